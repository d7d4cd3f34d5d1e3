"""NetworkPolicies (networking.k8s.io/v1): their type, kube's defaults and validation, and
the columns kubectl prints.

kube defaults a policy's ``policyTypes`` (SetDefaults_NetworkPolicy: ``["Ingress"]``, and
``"Egress"`` too when it has egress rules) and each port's protocol (TCP), and always writes
the spec's ``podSelector`` (a struct, not a pointer: ``{}`` when none was sent). The spec is
validated as kube's ValidateNetworkPolicySpec does: its label selectors, each port (a known
protocol; a port number in range or a port name; an endPort only after a numeric port, and
not below it), each peer (a selector, or an ipBlock alone, with a cidr) and the policy
types. The syntax of a CIDR is not checked. A policy has no status.

No protobuf layout: kubectl has no generator for NetworkPolicies, so clients send JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import Cause
from ..gotext import (
    field_forbidden,
    field_invalid,
    field_not_supported,
    field_required,
    go_quote,
)
from ..objectmeta import format_label_selector, label_selector_causes
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column

__all__ = ["NETWORK_POLICIES"]

_PROTOCOLS = ["TCP", "UDP", "SCTP"]
_POLICY_TYPES = ["Ingress", "Egress"]
# A rule list's key, and the key of its peers.
_RULES = (("ingress", "from"), ("egress", "to"))
# kube's IsValidPortName (k8s.io/apimachinery/pkg/util/validation).
_PORT_NAME_CHARSET = re.compile(r"[-a-z0-9]+")
_PORT_NAME_LETTER = re.compile(r".*[a-z]")


# ------------------------------------------------------------------------------ defaults


def _defaulted_rule(rule: Any) -> Any:
    """A rule whose ports have their protocol (a new dict where one was missing)."""
    ports = rule.get("ports") if isinstance(rule, dict) else None
    if not isinstance(ports, list):
        return rule
    defaulted = [
        {**p, "protocol": "TCP"} if isinstance(p, dict) and p.get("protocol") is None else p
        for p in ports
    ]
    if all(a is b for a, b in zip(defaulted, ports, strict=True)):
        return rule
    return {**rule, "ports": defaulted}


def _defaulted(obj: JSON) -> JSON:
    """``obj`` with kube's defaults, in a spec of its own (the stored one is never written)."""
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return obj  # (what Go's decoding refuses is not modelled here)
    spec = dict(spec)
    if spec.get("podSelector") is None:
        spec["podSelector"] = {}
    for key, _ in _RULES:
        if isinstance(spec.get(key), list):
            spec[key] = [_defaulted_rule(rule) for rule in spec[key]]
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    obj["spec"] = spec
    return obj


# ---------------------------------------------------------------------------- validation


def _port_name_messages(name: str) -> list[str]:
    """kube's IsValidPortName."""
    messages = []
    if len(name) > 15:
        messages.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARSET.fullmatch(name):
        messages.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER.match(name):
        messages.append("must contain at least one letter (a-z)")
    if "--" in name:
        messages.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        messages.append("must not begin or end with a hyphen")
    return messages


def _port_number_causes(path: str, number: int) -> list[Cause]:
    """kube's IsValidPortNum."""
    if 1 <= number <= 65535:
        return []
    return [field_invalid(path, number, "must be between 1 and 65535, inclusive")]


def _port_causes(path: str, port: Any) -> list[Cause]:
    """kube's ValidateNetworkPolicyPort."""
    if not isinstance(port, dict):
        return []
    causes = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in _PROTOCOLS:
        causes.append(field_not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, int) and not isinstance(number, bool):
        causes += _port_number_causes(f"{path}.port", number)
        if isinstance(end, int):
            if end < number:
                # (kube shows the port here, not the endPort)
                causes.append(
                    field_invalid(
                        f"{path}.endPort", number, "must be greater than or equal to `port`"
                    )
                )
            causes += _port_number_causes(f"{path}.endPort", end)
    elif isinstance(number, str):
        if end is not None:
            causes.append(
                field_invalid(
                    f"{path}.endPort", end, "may not be specified when `port` is non-numeric"
                )
            )
        causes += [field_invalid(f"{path}.port", number, m) for m in _port_name_messages(number)]
    elif number is None and end is not None:
        causes.append(
            field_invalid(
                f"{path}.endPort", end, "may not be specified when `port` is not specified"
            )
        )
    return causes


def _peer_causes(path: str, peer: Any) -> list[Cause]:
    """kube's ValidateNetworkPolicyPeer: one peer, or pod and namespace selectors together."""
    if not isinstance(peer, dict):
        return []
    causes = []
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            causes += label_selector_causes(f"{path}.{key}", peer[key])
    block = peer.get("ipBlock")
    if isinstance(block, dict) and not block.get("cidr"):
        causes.append(field_required(f"{path}.ipBlock.cidr"))
    given = [
        key for key in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(key) is not None
    ]
    if not given:
        causes.append(field_required(path, "must specify a peer"))
    elif len(given) > 1 and block is not None:
        causes.append(field_forbidden(path, "may not specify both ipBlock and another peer"))
    return causes


def _policy_types_causes(types: Any) -> list[Cause]:
    """The policy types: Ingress or Egress, at most two of them."""
    if not isinstance(types, list):
        return []
    if len(types) > len(_POLICY_TYPES):
        shown = ", ".join(go_quote(str(t)) for t in types)
        return [
            Cause(
                "spec.policyTypes",
                f"Invalid value: []networking.PolicyType{{{shown}}}: "
                f"may not specify more than two policyTypes",
            )
        ]
    return [
        field_not_supported(f"spec.policyTypes[{i}]", t, _POLICY_TYPES)
        for i, t in enumerate(types)
        if t not in _POLICY_TYPES
    ]


def _spec_causes(spec: Any) -> list[Cause]:
    """kube's ValidateNetworkPolicySpec (the same on create and update), in its order."""
    if not isinstance(spec, dict):
        return []
    causes = label_selector_causes("spec.podSelector", spec.get("podSelector"))
    for key, peers in _RULES:
        rules = spec.get(key)
        for i, rule in enumerate(rules if isinstance(rules, list) else ()):
            if not isinstance(rule, dict):
                continue
            at = f"spec.{key}[{i}]"
            for j, port in enumerate(rule.get("ports") or ()):
                causes += _port_causes(f"{at}.ports[{j}]", port)
            for j, peer in enumerate(rule.get(peers) or ()):
                causes += _peer_causes(f"{at}.{peers}[{j}]", peer)
    return causes + _policy_types_causes(spec.get("policyTypes"))


# -------------------------------------------------------------------------------- the kind


def _pod_selector(obj: JSON) -> str:
    """kubectl's POD-SELECTOR: the selector as FormatLabelSelector prints it."""
    selector = (obj.get("spec") or {}).get("podSelector")
    return format_label_selector(selector) or "<none>"


class _NetworkPolicy(BaseStrategy):
    """A NetworkPolicy: defaulted on every write, validated as kube does."""

    columns: tuple[Column, ...] = (Column("Pod-Selector", "string", _pod_selector),)

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The policy with kube's defaults."""
        return _defaulted(obj)

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The policy with kube's defaults."""
        return _defaulted(obj)

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """ValidateNetworkPolicySpec."""
        return _spec_causes(obj.get("spec"))


NETWORK_POLICIES = Builtin(
    builtin_type("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _NetworkPolicy(),
)
