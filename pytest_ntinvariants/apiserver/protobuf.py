"""Kubernetes protobuf request bodies, decoded to the JSON kube-apiserver would have read.

kubectl's typed generators (``kubectl create namespace|configmap|secret|deployment|role|…``,
``kubectl auth can-i|whoami``) and client-go's typed clients send their bodies as
``application/vnd.kubernetes.protobuf``: the magic ``k8s\\x00`` and a ``runtime.Unknown``
envelope (the apiVersion and kind, and the object's own protobuf in ``raw``). This module
turns such a body into the JSON object the rest of the fake speaks.

The object's JSON is what Go's encoding/json writes for the typed object kube decodes the
body into, which is also what ``kubectl create … --dry-run=client -o json`` prints for the
same object. That is not "every field on the wire": kube's generated marshallers write
every non-pointer field, zero or not (an ObjectMeta always carries ``generateName: ""``,
a DeploymentStatus all its zero counters), so each field here says what Go's JSON does:

- a pointer (``*int32 replicas``) appears when it was on the wire, zero or not;
- a plain scalar, list or map with ``omitempty`` appears when it is not zero or empty;
- one without ``omitempty`` always appears (an empty list or map as ``null``);
- a nested struct always appears (``status: {}``), an embedded one is inlined.

The layouts are written down below, from the field numbers, types and JSON tags of the
Kubernetes 1.32 API (the version this fake reports); the protobuf package parses by them.
A field number on the wire that the layout does not know is refused with 415 (it would
otherwise vanish without a word), malformed protobuf with 400.
"""

from __future__ import annotations

import base64
import datetime
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from . import errors
from .kinds import BUILTIN_KINDS

__all__ = ["KINDS", "MAGIC", "MEDIA_TYPE", "decode", "envelope", "message_class"]

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
# runtime/serializer/protobuf: every body starts with these four bytes.
MAGIC = b"k8s\x00"

# The kinds decoded: (apiVersion, kind) -> message name in _LAYOUT (and, below, the kinds
# whose strategies lay out their own).
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "LocalSubjectAccessReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
}

# The message layouts. ``Message field field …`` (continued on indented lines), each field
# ``jsonName=number[:type][!]``:
#   type   string when omitted; int32, int64, bool, bytes; or a message of this table;
#          ``[T]`` repeated, ``{T}`` map<string, T>, ``*T`` a Go pointer (presence counts);
#   !      the JSON tag has no omitempty: the zero value (null for a nil list, map or
#          pointer) is written too;
#   inline a Go embedded struct: its fields are the parent's in JSON.
# ``Message = Other`` lays a message out as an earlier one (same fields, same numbers).
_LAYOUT = """
# core/v1 (k8s.io/api/core/v1/generated.proto). VolumeSource lacks the deprecated in-tree
# plugins (awsElasticBlockStore, azureDisk, azureFile, cephfs, cinder, flexVolume, flocker,
# gcePersistentDisk, gitRepo, glusterfs, photonPersistentDisk, portworxVolume, quobyte, rbd,
# scaleIO, storageos, vsphereVolume): a body that uses one gets the 415 that names it.
Namespace metadata=1:ObjectMeta spec=2:NamespaceSpec status=3:NamespaceStatus
ConfigMap metadata=1:ObjectMeta data=2:{string} binaryData=3:{bytes} immutable=4:*bool
Secret metadata=1:ObjectMeta data=2:{bytes} type=3 stringData=4:{string} immutable=5:*bool
ServiceAccount metadata=1:ObjectMeta secrets=2:[ObjectReference]
    imagePullSecrets=3:[LocalObjectReference] automountServiceAccountToken=4:*bool
Pod metadata=1:ObjectMeta spec=2:PodSpec status=3:PodStatus
Service metadata=1:ObjectMeta spec=2:ServiceSpec status=3:ServiceStatus
NamespaceSpec finalizers=1:[string]
NamespaceStatus phase=1 conditions=2:[NamespaceCondition]
ObjectReference kind=1 namespace=2 name=3 uid=4 apiVersion=5 resourceVersion=6 fieldPath=7
LocalObjectReference name=1
PodSpec volumes=1:[Volume] containers=2:[Container]! restartPolicy=3
    terminationGracePeriodSeconds=4:*int64 activeDeadlineSeconds=5:*int64 dnsPolicy=6
    nodeSelector=7:{string} serviceAccountName=8 serviceAccount=9 nodeName=10
    hostNetwork=11:bool hostPID=12:bool hostIPC=13:bool
    securityContext=14:*PodSecurityContext imagePullSecrets=15:[LocalObjectReference]
    hostname=16 subdomain=17 affinity=18:*Affinity schedulerName=19
    initContainers=20:[Container] automountServiceAccountToken=21:*bool
    tolerations=22:[Toleration] hostAliases=23:[HostAlias] priorityClassName=24
    priority=25:*int32 dnsConfig=26:*PodDNSConfig shareProcessNamespace=27:*bool
    readinessGates=28:[PodReadinessGate] runtimeClassName=29:*string
    enableServiceLinks=30:*bool preemptionPolicy=31:*string overhead=32:{Quantity}
    topologySpreadConstraints=33:[TopologySpreadConstraint]
    ephemeralContainers=34:[EphemeralContainer] setHostnameAsFQDN=35:*bool os=36:*PodOS
    hostUsers=37:*bool schedulingGates=38:[PodSchedulingGate]
    resourceClaims=39:[PodResourceClaim] resources=40:*ResourceRequirements
PodStatus phase=1 conditions=2:[PodCondition] message=3 reason=4 hostIP=5 podIP=6
    startTime=7:*Time containerStatuses=8:[ContainerStatus] qosClass=9
    initContainerStatuses=10:[ContainerStatus] nominatedNodeName=11 podIPs=12:[PodIP]
    ephemeralContainerStatuses=13:[ContainerStatus] resize=14
    resourceClaimStatuses=15:[PodResourceClaimStatus] hostIPs=16:[HostIP]
ServiceSpec ports=1:[ServicePort] selector=2:{string} clusterIP=3 type=4
    externalIPs=5:[string] sessionAffinity=7 loadBalancerIP=8
    loadBalancerSourceRanges=9:[string] externalName=10 externalTrafficPolicy=11
    healthCheckNodePort=12:int32 publishNotReadyAddresses=13:bool
    sessionAffinityConfig=14:*SessionAffinityConfig ipFamilyPolicy=17:*string
    clusterIPs=18:[string] ipFamilies=19:[string] allocateLoadBalancerNodePorts=20:*bool
    loadBalancerClass=21:*string internalTrafficPolicy=22:*string
    trafficDistribution=23:*string
ServiceStatus loadBalancer=1:LoadBalancerStatus conditions=2:[Condition]
NamespaceCondition type=1! status=2! lastTransitionTime=4:Time reason=5 message=6
Volume name=1! inline=2:VolumeSource
Container name=1! image=2 command=3:[string] args=4:[string] workingDir=5
    ports=6:[ContainerPort] env=7:[EnvVar] resources=8:ResourceRequirements
    volumeMounts=9:[VolumeMount] livenessProbe=10:*Probe readinessProbe=11:*Probe
    lifecycle=12:*Lifecycle terminationMessagePath=13 imagePullPolicy=14
    securityContext=15:*SecurityContext stdin=16:bool stdinOnce=17:bool tty=18:bool
    envFrom=19:[EnvFromSource] terminationMessagePolicy=20 volumeDevices=21:[VolumeDevice]
    startupProbe=22:*Probe resizePolicy=23:[ContainerResizePolicy] restartPolicy=24:*string
PodSecurityContext seLinuxOptions=1:*SELinuxOptions runAsUser=2:*int64 runAsNonRoot=3:*bool
    supplementalGroups=4:[int64] fsGroup=5:*int64 runAsGroup=6:*int64 sysctls=7:[Sysctl]
    windowsOptions=8:*WindowsSecurityContextOptions fsGroupChangePolicy=9:*string
    seccompProfile=10:*SeccompProfile appArmorProfile=11:*AppArmorProfile
    supplementalGroupsPolicy=12:*string seLinuxChangePolicy=13:*string
Affinity nodeAffinity=1:*NodeAffinity podAffinity=2:*PodAffinity
    podAntiAffinity=3:*PodAntiAffinity
Toleration key=1 operator=2 value=3 effect=4 tolerationSeconds=5:*int64
HostAlias ip=1! hostnames=2:[string]
PodDNSConfig nameservers=1:[string] searches=2:[string] options=3:[PodDNSConfigOption]
PodReadinessGate conditionType=1!
TopologySpreadConstraint maxSkew=1:int32! topologyKey=2! whenUnsatisfiable=3!
    labelSelector=4:*LabelSelector minDomains=5:*int32 nodeAffinityPolicy=6:*string
    nodeTaintsPolicy=7:*string matchLabelKeys=8:[string]
EphemeralContainer inline=1:EphemeralContainerCommon targetContainerName=2
PodOS name=1!
PodSchedulingGate name=1!
PodResourceClaim name=1! resourceClaimName=3:*string resourceClaimTemplateName=4:*string
ResourceRequirements limits=1:{Quantity} requests=2:{Quantity} claims=3:[ResourceClaim]
PodCondition type=1! status=2! lastProbeTime=3:Time lastTransitionTime=4:Time reason=5
    message=6
ContainerStatus name=1! state=2:ContainerState lastState=3:ContainerState ready=4:bool!
    restartCount=5:int32! image=6! imageID=7! containerID=8 started=9:*bool
    allocatedResources=10:{Quantity} resources=11:*ResourceRequirements
    volumeMounts=12:[VolumeMountStatus] user=13:*ContainerUser
    allocatedResourcesStatus=14:[ResourceStatus]
PodIP ip=1!
PodResourceClaimStatus name=1! resourceClaimName=2:*string
HostIP ip=1!
ServicePort name=1 protocol=2 port=3:int32! targetPort=4:IntOrString nodePort=5:int32
    appProtocol=6:*string
SessionAffinityConfig clientIP=1:*ClientIPConfig
LoadBalancerStatus ingress=1:[LoadBalancerIngress]
PodTemplateSpec metadata=1:ObjectMeta spec=2:PodSpec
VolumeSource hostPath=1:*HostPathVolumeSource emptyDir=2:*EmptyDirVolumeSource
    secret=6:*SecretVolumeSource nfs=7:*NFSVolumeSource iscsi=8:*ISCSIVolumeSource
    persistentVolumeClaim=10:*PersistentVolumeClaimVolumeSource
    downwardAPI=16:*DownwardAPIVolumeSource fc=17:*FCVolumeSource
    configMap=19:*ConfigMapVolumeSource projected=26:*ProjectedVolumeSource
    csi=28:*CSIVolumeSource ephemeral=29:*EphemeralVolumeSource image=30:*ImageVolumeSource
ContainerPort name=1 hostPort=2:int32 containerPort=3:int32! protocol=4 hostIP=5
EnvVar name=1! value=2 valueFrom=3:*EnvVarSource
VolumeMount name=1! readOnly=2:bool mountPath=3! subPath=4 mountPropagation=5:*string
    subPathExpr=6 recursiveReadOnly=7:*string
Probe inline=1:ProbeHandler initialDelaySeconds=2:int32 timeoutSeconds=3:int32
    periodSeconds=4:int32 successThreshold=5:int32 failureThreshold=6:int32
    terminationGracePeriodSeconds=7:*int64
Lifecycle postStart=1:*LifecycleHandler preStop=2:*LifecycleHandler
SecurityContext capabilities=1:*Capabilities privileged=2:*bool
    seLinuxOptions=3:*SELinuxOptions runAsUser=4:*int64 runAsNonRoot=5:*bool
    readOnlyRootFilesystem=6:*bool allowPrivilegeEscalation=7:*bool runAsGroup=8:*int64
    procMount=9:*string windowsOptions=10:*WindowsSecurityContextOptions
    seccompProfile=11:*SeccompProfile appArmorProfile=12:*AppArmorProfile
EnvFromSource prefix=1 configMapRef=2:*ConfigMapEnvSource secretRef=3:*SecretEnvSource
VolumeDevice name=1! devicePath=2!
ContainerResizePolicy resourceName=1! restartPolicy=2!
SELinuxOptions user=1 role=2 type=3 level=4
Sysctl name=1! value=2!
WindowsSecurityContextOptions gmsaCredentialSpecName=1:*string gmsaCredentialSpec=2:*string
    runAsUserName=3:*string hostProcess=4:*bool
SeccompProfile type=1! localhostProfile=2:*string
AppArmorProfile type=1! localhostProfile=2:*string
NodeAffinity requiredDuringSchedulingIgnoredDuringExecution=1:*NodeSelector
    preferredDuringSchedulingIgnoredDuringExecution=2:[PreferredSchedulingTerm]
PodAffinity requiredDuringSchedulingIgnoredDuringExecution=1:[PodAffinityTerm]
    preferredDuringSchedulingIgnoredDuringExecution=2:[WeightedPodAffinityTerm]
PodAntiAffinity requiredDuringSchedulingIgnoredDuringExecution=1:[PodAffinityTerm]
    preferredDuringSchedulingIgnoredDuringExecution=2:[WeightedPodAffinityTerm]
PodDNSConfigOption name=1 value=2:*string
EphemeralContainerCommon = Container
ResourceClaim name=1! request=2
ContainerState waiting=1:*ContainerStateWaiting running=2:*ContainerStateRunning
    terminated=3:*ContainerStateTerminated
VolumeMountStatus name=1! mountPath=2! readOnly=3:bool recursiveReadOnly=4:*string
ContainerUser linux=1:*LinuxContainerUser
ResourceStatus name=1! resources=2:[ResourceHealth]
ClientIPConfig timeoutSeconds=1:*int32
LoadBalancerIngress ip=1 hostname=2 ipMode=3:*string ports=4:[PortStatus]
HostPathVolumeSource path=1! type=2:*string
EmptyDirVolumeSource medium=1 sizeLimit=2:*Quantity
SecretVolumeSource secretName=1 items=2:[KeyToPath] defaultMode=3:*int32 optional=4:*bool
NFSVolumeSource server=1! path=2! readOnly=3:bool
ISCSIVolumeSource targetPortal=1! iqn=2! lun=3:int32! iscsiInterface=4 fsType=5
    readOnly=6:bool portals=7:[string] chapAuthDiscovery=8:bool
    secretRef=10:*LocalObjectReference chapAuthSession=11:bool initiatorName=12:*string
PersistentVolumeClaimVolumeSource claimName=1! readOnly=2:bool
DownwardAPIVolumeSource items=1:[DownwardAPIVolumeFile] defaultMode=2:*int32
FCVolumeSource targetWWNs=1:[string] lun=2:*int32 fsType=3 readOnly=4:bool wwids=5:[string]
ConfigMapVolumeSource inline=1:LocalObjectReference items=2:[KeyToPath] defaultMode=3:*int32
    optional=4:*bool
ProjectedVolumeSource sources=1:[VolumeProjection]! defaultMode=2:*int32
CSIVolumeSource driver=1! readOnly=2:*bool fsType=3:*string volumeAttributes=4:{string}
    nodePublishSecretRef=5:*LocalObjectReference
EphemeralVolumeSource volumeClaimTemplate=1:*PersistentVolumeClaimTemplate
ImageVolumeSource reference=1 pullPolicy=2
EnvVarSource fieldRef=1:*ObjectFieldSelector resourceFieldRef=2:*ResourceFieldSelector
    configMapKeyRef=3:*ConfigMapKeySelector secretKeyRef=4:*SecretKeySelector
ProbeHandler exec=1:*ExecAction httpGet=2:*HTTPGetAction tcpSocket=3:*TCPSocketAction
    grpc=4:*GRPCAction
LifecycleHandler exec=1:*ExecAction httpGet=2:*HTTPGetAction tcpSocket=3:*TCPSocketAction
    sleep=4:*SleepAction
Capabilities add=1:[string] drop=2:[string]
ConfigMapEnvSource inline=1:LocalObjectReference optional=2:*bool
SecretEnvSource inline=1:LocalObjectReference optional=2:*bool
NodeSelector nodeSelectorTerms=1:[NodeSelectorTerm]!
PreferredSchedulingTerm weight=1:int32! preference=2:NodeSelectorTerm
PodAffinityTerm labelSelector=1:*LabelSelector namespaces=2:[string] topologyKey=3!
    namespaceSelector=4:*LabelSelector matchLabelKeys=5:[string]
    mismatchLabelKeys=6:[string]
WeightedPodAffinityTerm weight=1:int32! podAffinityTerm=2:PodAffinityTerm
ContainerStateWaiting reason=1 message=2
ContainerStateRunning startedAt=1:Time
ContainerStateTerminated exitCode=1:int32! signal=2:int32 reason=3 message=4
    startedAt=5:Time finishedAt=6:Time containerID=7
LinuxContainerUser uid=1:int64! gid=2:int64! supplementalGroups=3:[int64]
ResourceHealth resourceID=1! health=2
PortStatus port=1:int32! protocol=2! error=3:*string
KeyToPath key=1! path=2! mode=3:*int32
DownwardAPIVolumeFile path=1! fieldRef=2:*ObjectFieldSelector
    resourceFieldRef=3:*ResourceFieldSelector mode=4:*int32
VolumeProjection secret=1:*SecretProjection downwardAPI=2:*DownwardAPIProjection
    configMap=3:*ConfigMapProjection serviceAccountToken=4:*ServiceAccountTokenProjection
    clusterTrustBundle=5:*ClusterTrustBundleProjection
PersistentVolumeClaimTemplate metadata=1:ObjectMeta spec=2:PersistentVolumeClaimSpec
ObjectFieldSelector apiVersion=1 fieldPath=2!
ResourceFieldSelector containerName=1 resource=2! divisor=3:Quantity
ConfigMapKeySelector inline=1:LocalObjectReference key=2! optional=3:*bool
SecretKeySelector inline=1:LocalObjectReference key=2! optional=3:*bool
ExecAction command=1:[string]
HTTPGetAction path=1 port=2:IntOrString host=3 scheme=4 httpHeaders=5:[HTTPHeader]
TCPSocketAction port=1:IntOrString host=2
GRPCAction port=1:int32! service=2:*string!
SleepAction seconds=1:int64!
NodeSelectorTerm matchExpressions=1:[NodeSelectorRequirement]
    matchFields=2:[NodeSelectorRequirement]
SecretProjection inline=1:LocalObjectReference items=2:[KeyToPath] optional=4:*bool
DownwardAPIProjection items=1:[DownwardAPIVolumeFile]
ConfigMapProjection inline=1:LocalObjectReference items=2:[KeyToPath] optional=4:*bool
ServiceAccountTokenProjection audience=1 expirationSeconds=2:*int64 path=3!
ClusterTrustBundleProjection name=1:*string signerName=2:*string
    labelSelector=3:*LabelSelector path=4! optional=5:*bool
PersistentVolumeClaimSpec accessModes=1:[string] resources=2:VolumeResourceRequirements
    volumeName=3 selector=4:*LabelSelector storageClassName=5:*string volumeMode=6:*string
    dataSource=7:*TypedLocalObjectReference dataSourceRef=8:*TypedObjectReference
    volumeAttributesClassName=9:*string
HTTPHeader name=1! value=2!
NodeSelectorRequirement key=1! operator=2! values=3:[string]
VolumeResourceRequirements limits=1:{Quantity} requests=2:{Quantity}
TypedLocalObjectReference apiGroup=1:*string! kind=2! name=3!
TypedObjectReference apiGroup=1:*string! kind=2! name=3! namespace=4:*string
ResourceQuota metadata=1:ObjectMeta spec=2:ResourceQuotaSpec status=3:ResourceQuotaStatus
ResourceQuotaSpec hard=1:{Quantity} scopes=2:[string] scopeSelector=3:*ScopeSelector
ResourceQuotaStatus hard=1:{Quantity} used=2:{Quantity}
ScopeSelector matchExpressions=1:[ScopedResourceSelectorRequirement]
ScopedResourceSelectorRequirement scopeName=1! operator=2! values=3:[string]
# apps/v1
Deployment metadata=1:ObjectMeta spec=2:DeploymentSpec status=3:DeploymentStatus
DeploymentSpec replicas=1:*int32 selector=2:*LabelSelector! template=3:PodTemplateSpec
    strategy=4:DeploymentStrategy minReadySeconds=5:int32 revisionHistoryLimit=6:*int32
    paused=7:bool progressDeadlineSeconds=9:*int32
DeploymentStatus observedGeneration=1:int64 replicas=2:int32 updatedReplicas=3:int32
    availableReplicas=4:int32 unavailableReplicas=5:int32 conditions=6:[DeploymentCondition]
    readyReplicas=7:int32 collisionCount=8:*int32
DeploymentStrategy type=1 rollingUpdate=2:*RollingUpdateDeployment
DeploymentCondition type=1! status=2! reason=4 message=5 lastUpdateTime=6:Time
    lastTransitionTime=7:Time
RollingUpdateDeployment maxUnavailable=1:*IntOrString maxSurge=2:*IntOrString
# batch/v1
Job metadata=1:ObjectMeta spec=2:JobSpec status=3:JobStatus
CronJob metadata=1:ObjectMeta spec=2:CronJobSpec status=3:CronJobStatus
JobSpec parallelism=1:*int32 completions=2:*int32 activeDeadlineSeconds=3:*int64
    selector=4:*LabelSelector manualSelector=5:*bool template=6:PodTemplateSpec
    backoffLimit=7:*int32 ttlSecondsAfterFinished=8:*int32 completionMode=9:*string
    suspend=10:*bool podFailurePolicy=11:*PodFailurePolicy backoffLimitPerIndex=12:*int32
    maxFailedIndexes=13:*int32 podReplacementPolicy=14:*string managedBy=15:*string
    successPolicy=16:*SuccessPolicy
JobStatus conditions=1:[JobCondition] startTime=2:*Time completionTime=3:*Time
    active=4:int32 succeeded=5:int32 failed=6:int32 completedIndexes=7
    uncountedTerminatedPods=8:*UncountedTerminatedPods ready=9:*int32
    failedIndexes=10:*string terminating=11:*int32
CronJobSpec schedule=1! startingDeadlineSeconds=2:*int64 concurrencyPolicy=3 suspend=4:*bool
    jobTemplate=5:JobTemplateSpec successfulJobsHistoryLimit=6:*int32
    failedJobsHistoryLimit=7:*int32 timeZone=8:*string
CronJobStatus active=1:[ObjectReference] lastScheduleTime=4:*Time lastSuccessfulTime=5:*Time
PodFailurePolicy rules=1:[PodFailurePolicyRule]!
SuccessPolicy rules=1:[SuccessPolicyRule]!
JobCondition type=1! status=2! lastProbeTime=3:Time lastTransitionTime=4:Time reason=5
    message=6
UncountedTerminatedPods succeeded=1:[string] failed=2:[string]
JobTemplateSpec metadata=1:ObjectMeta spec=2:JobSpec
PodFailurePolicyRule action=1! onExitCodes=2:*PodFailurePolicyOnExitCodesRequirement
    onPodConditions=3:[PodFailurePolicyOnPodConditionsPattern]
SuccessPolicyRule succeededIndexes=1:*string succeededCount=2:*int32
PodFailurePolicyOnExitCodesRequirement containerName=1:*string operator=2! values=3:[int32]!
PodFailurePolicyOnPodConditionsPattern type=1! status=2!
# rbac.authorization.k8s.io/v1
Role metadata=1:ObjectMeta rules=2:[PolicyRule]!
ClusterRole metadata=1:ObjectMeta rules=2:[PolicyRule]! aggregationRule=3:*AggregationRule
RoleBinding metadata=1:ObjectMeta subjects=2:[Subject] roleRef=3:RoleRef
ClusterRoleBinding metadata=1:ObjectMeta subjects=2:[Subject] roleRef=3:RoleRef
PolicyRule verbs=1:[string]! apiGroups=2:[string] resources=3:[string]
    resourceNames=4:[string] nonResourceURLs=5:[string]
AggregationRule clusterRoleSelectors=1:[LabelSelector]
Subject kind=1! apiGroup=2 name=3! namespace=4
RoleRef apiGroup=1! kind=2! name=3!
# authorization.k8s.io/v1
SelfSubjectAccessReview metadata=1:ObjectMeta spec=2:SelfSubjectAccessReviewSpec
    status=3:SubjectAccessReviewStatus
SelfSubjectRulesReview metadata=1:ObjectMeta spec=2:SelfSubjectRulesReviewSpec
    status=3:SubjectRulesReviewStatus
SubjectAccessReview metadata=1:ObjectMeta spec=2:SubjectAccessReviewSpec
    status=3:SubjectAccessReviewStatus
LocalSubjectAccessReview metadata=1:ObjectMeta spec=2:SubjectAccessReviewSpec
    status=3:SubjectAccessReviewStatus
SelfSubjectAccessReviewSpec resourceAttributes=1:*ResourceAttributes
    nonResourceAttributes=2:*NonResourceAttributes
SubjectAccessReviewStatus allowed=1:bool! reason=2 evaluationError=3 denied=4:bool
SelfSubjectRulesReviewSpec namespace=1
SubjectRulesReviewStatus resourceRules=1:[ResourceRule]!
    nonResourceRules=2:[NonResourceRule]! incomplete=3:bool! evaluationError=4
SubjectAccessReviewSpec resourceAttributes=1:*ResourceAttributes
    nonResourceAttributes=2:*NonResourceAttributes user=3 groups=4:[string]
    extra=5:{ExtraValue} uid=6
ResourceAttributes namespace=1 verb=2 group=3 version=4 resource=5 subresource=6 name=7
    fieldSelector=8:*FieldSelectorAttributes labelSelector=9:*LabelSelectorAttributes
NonResourceAttributes path=1 verb=2
ResourceRule verbs=1:[string]! apiGroups=2:[string] resources=3:[string]
    resourceNames=4:[string]
NonResourceRule verbs=1:[string]! nonResourceURLs=2:[string]
FieldSelectorAttributes rawSelector=1 requirements=2:[FieldSelectorRequirement]
LabelSelectorAttributes rawSelector=1 requirements=2:[LabelSelectorRequirement]
# authentication.k8s.io/v1
SelfSubjectReview metadata=1:ObjectMeta status=2:SelfSubjectReviewStatus
TokenReview metadata=1:ObjectMeta spec=2:TokenReviewSpec status=3:TokenReviewStatus
SelfSubjectReviewStatus userInfo=1:UserInfo
TokenReviewSpec token=1 audiences=2:[string]
TokenReviewStatus authenticated=1:bool user=2:UserInfo error=3 audiences=4:[string]
UserInfo username=1 uid=2 groups=3:[string] extra=4:{ExtraValue}
# networking.k8s.io/v1
Ingress metadata=1:ObjectMeta spec=2:IngressSpec status=3:IngressStatus
IngressSpec defaultBackend=1:*IngressBackend tls=2:[IngressTLS] rules=3:[IngressRule]
    ingressClassName=4:*string
IngressStatus loadBalancer=1:IngressLoadBalancerStatus
IngressBackend resource=3:*TypedLocalObjectReference service=4:*IngressServiceBackend
IngressTLS hosts=1:[string] secretName=2
IngressRule host=1 inline=2:IngressRuleValue
IngressLoadBalancerStatus ingress=1:[IngressLoadBalancerIngress]
IngressServiceBackend name=1! port=2:ServiceBackendPort
IngressRuleValue http=1:*HTTPIngressRuleValue
IngressLoadBalancerIngress ip=1 hostname=2 ports=4:[IngressPortStatus]
ServiceBackendPort name=1 number=2:int32
HTTPIngressRuleValue paths=1:[HTTPIngressPath]!
IngressPortStatus port=1:int32! protocol=2! error=3:*string
HTTPIngressPath path=1 backend=2:IngressBackend pathType=3:*string!
# meta/v1 (k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto)
ObjectMeta name=1 generateName=2 namespace=3 selfLink=4 uid=5 resourceVersion=6
    generation=7:int64 creationTimestamp=8:Time deletionTimestamp=9:*Time
    deletionGracePeriodSeconds=10:*int64 labels=11:{string} annotations=12:{string}
    ownerReferences=13:[OwnerReference] finalizers=14:[string]
    managedFields=17:[ManagedFieldsEntry]
OwnerReference kind=1! name=3! uid=4! apiVersion=5! controller=6:*bool
    blockOwnerDeletion=7:*bool
ManagedFieldsEntry manager=1 operation=2 apiVersion=3 time=4:*Time fieldsType=6
    fieldsV1=7:*FieldsV1 subresource=8
Condition type=1! status=2! observedGeneration=3:int64 lastTransitionTime=4:Time reason=5!
    message=6!
LabelSelector matchLabels=1:{string} matchExpressions=2:[LabelSelectorRequirement]
LabelSelectorRequirement key=1! operator=2! values=3:[string]
FieldSelectorRequirement key=1! operator=2! values=3:[string]
# apimachinery types with JSON forms of their own (_SPECIAL below)
Time seconds=1:int64 nanos=2:int32
IntOrString type=1:int64 intVal=2:int32 strVal=3
Quantity string=1
FieldsV1 Raw=1:bytes
ExtraValue items=1:[string]
# runtime (k8s.io/apimachinery/pkg/runtime/generated.proto): the envelope of every body
Unknown typeMeta=1:TypeMeta raw=2:bytes contentEncoding=3 contentType=4
TypeMeta apiVersion=1 kind=2
"""

_PACKAGE = "ntinv.kube"
_TOKEN = re.compile(r"(\w+)=(\d+)(?::(\[\w+\]|\{\w+\}|\*?\w+))?(!?)")
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
}
# What a field of each scalar type holds when Go's omitempty leaves it out.
_ZERO: dict[str, Any] = {"string": "", "bytes": b"", "bool": False, "int32": 0, "int64": 0}
_WIRE_TYPES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "group", 4: "group", 5: "32-bit"}


@dataclass(frozen=True, slots=True)
class _Field:
    """One field of a layout: how to find it in the parsed message and write it as JSON."""

    json: str  # the JSON name; "" for an embedded (inline) struct
    number: int
    type: str  # a scalar type or a message name
    shape: str  # "one", "list" or "map" (map<string, type>)
    pointer: bool  # a Go pointer: written when present on the wire, zero or not
    always: bool  # no omitempty: zero values are written (nil lists, maps, pointers as null)

    @property
    def attr(self) -> str:
        """The field's name in the descriptor (an inline field has no JSON name of its own)."""
        return self.json or f"inline{self.number}"


def _parse_layout(text: str) -> dict[str, tuple[_Field, ...]]:
    entries: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            entries[-1].extend(line.split())
        else:
            entries.append(line.split())
    layout: dict[str, tuple[_Field, ...]] = {}
    for name, *tokens in entries:
        if tokens[:1] == ["="]:
            layout[name] = layout[tokens[1]]
            continue
        fields = []
        for token in tokens:
            m = _TOKEN.fullmatch(token)
            if m is None:
                raise ValueError(f"bad field {token!r} in the layout of {name}")
            json_name, number, spelled, always = m.groups()
            spelled = spelled or "string"
            mark = spelled[0] if spelled[0] in "[{*" else ""
            fields.append(
                _Field(
                    json="" if json_name == "inline" else json_name,
                    number=int(number),
                    type=spelled.strip("[]{}*"),
                    shape={"[": "list", "{": "map"}.get(mark, "one"),
                    pointer=mark == "*",
                    always=always == "!",
                )
            )
        if name in layout:
            raise ValueError(f"{name} is laid out twice")
        layout[name] = tuple(fields)
    return layout


# A built-in kind whose strategy lays out its own message (``protobuf_layout``, named after
# the kind; it may use the messages above) is decoded too.
_KIND_LAYOUTS = {
    (row.type.api_version, row.type.kind): layout
    for row in BUILTIN_KINDS
    if (layout := row.strategy.protobuf_layout)
}
KINDS.update({key: key[1] for key in _KIND_LAYOUTS})
_MESSAGES = _parse_layout(_LAYOUT + "".join(dict.fromkeys(_KIND_LAYOUTS.values())))


def _descriptor(name: str, fields: tuple[_Field, ...]) -> descriptor_pb2.DescriptorProto:
    proto = descriptor_pb2.DescriptorProto(name=name)
    for f in fields:
        if f.type not in _SCALARS and f.type not in _MESSAGES:
            raise ValueError(f"{name}.{f.attr} has the unknown type {f.type}")
        field = proto.field.add(name=f.attr, number=f.number)
        field.label = (
            descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            if f.shape == "one"
            else descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        )
        if f.shape == "map":
            # A map is a repeated entry message {key = 1; value = 2}, as protoc makes it.
            entry = proto.nested_type.add(name=f"{f.attr[0].upper()}{f.attr[1:]}Entry")
            entry.options.map_entry = True
            entry.field.add(
                name="key",
                number=1,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                type=_SCALARS["string"],
            )
            _set_type(entry.field.add(name="value", number=2), f.type)
            entry.field[1].label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
            field.type_name = f".{_PACKAGE}.{name}.{entry.name}"
        else:
            _set_type(field, f.type)
    return proto


def _set_type(field: descriptor_pb2.FieldDescriptorProto, type_name: str) -> None:
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f".{_PACKAGE}.{type_name}"


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    # Proto2, as Kubernetes' own .proto files: presence is kept for every singular field,
    # which is how a pointer's zero (``replicas: 0``) differs from its absence.
    file = descriptor_pb2.FileDescriptorProto(
        name="ntinv_kube.proto", package=_PACKAGE, syntax="proto2"
    )
    file.message_type.extend(_descriptor(name, fields) for name, fields in _MESSAGES.items())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


def message_class(name: str) -> type[Message]:
    """The protobuf message class of a layout, e.g. ``message_class("Deployment")``.

    Build a body with it: ``envelope("apps/v1", "Deployment", msg.SerializeToString())``.
    Field names are the JSON names; an embedded struct's field is ``inline<number>``.
    """
    if name not in _MESSAGES:
        raise KeyError(f"no protobuf layout for {name}")
    cls: type[Message] = message_factory.GetMessageClass(
        _pool().FindMessageTypeByName(f"{_PACKAGE}.{name}")
    )
    return cls


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """A complete request body: the magic and a ``runtime.Unknown`` holding ``raw``."""
    unknown: Any = message_class("Unknown")(raw=raw)
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    return MAGIC + bytes(unknown.SerializeToString())


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf request body.

    Raises ``BadRequest`` for a body that is not well-formed Kubernetes protobuf and
    ``UnsupportedMediaType`` for a kind, or a field, this module has no layout for.
    """
    if not body.startswith(MAGIC):
        raise errors.BadRequest(
            f"the protobuf body does not start with the Kubernetes magic {MAGIC!r}"
        )
    unknown = _parse("Unknown", body[len(MAGIC) :])
    _check_known(unknown, "Unknown", "the envelope")
    type_meta = unknown.typeMeta
    api_version, kind = _text(type_meta.apiVersion), _text(type_meta.kind)
    if not kind:
        raise errors.BadRequest("the protobuf envelope names no kind")
    encoding, content_type = _text(unknown.contentEncoding), _text(unknown.contentType)
    if encoding or content_type not in ("", MEDIA_TYPE):
        raise errors.UnsupportedMediaType(
            f"this fake API server reads protobuf bodies that hold the object itself, not "
            f"{content_type or 'protobuf'} with content encoding {encoding or 'none'}"
        )
    name = KINDS.get((api_version, kind))
    if name is None:
        raise errors.UnsupportedMediaType(
            f"this fake API server cannot decode {api_version} {kind} from protobuf (it "
            f"decodes the kinds kubectl's generators and access reviews send); send it as "
            f"JSON or YAML instead: `kubectl create -f` or `kubectl apply -f` with a manifest"
        )
    obj = _to_json(_parse(name, bytes(unknown.raw)), name, kind)
    if not isinstance(obj, dict):  # (every kind is a struct; this keeps mypy honest)
        raise errors.BadRequest(f"{kind} did not decode to an object")
    return {"apiVersion": api_version, "kind": kind, **obj}


def _parse(name: str, data: bytes) -> Any:
    # (Any: the fields of these messages are attributes made at run time)
    msg = message_class(name)()
    try:
        msg.ParseFromString(data)
    except DecodeError as e:
        raise errors.BadRequest(f"the protobuf body is malformed ({name}): {e}") from None
    return msg


def _text(value: str | bytes) -> str:
    # Proto2 strings are not checked for UTF-8 (Go does not either); the parser hands
    # invalid ones over as bytes, and Go's JSON writes each bad byte as U+FFFD.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _check_known(msg: Any, name: str, path: str) -> None:
    """Refuse what the parser kept aside: fields it had no layout for, or could not read."""
    for field in UnknownFieldSet(msg):
        number, wire = field.field_number, _WIRE_TYPES.get(field.wire_type, "unknown")
        known = msg.DESCRIPTOR.fields_by_number.get(number)
        if known is None:
            raise errors.UnsupportedMediaType(
                f"this fake API server's protobuf decoder does not know field {number} of "
                f"{name} (at {path}); send the object as JSON or YAML instead: "
                f"`kubectl create -f` or `kubectl apply -f` with a manifest"
            )
        raise errors.BadRequest(
            f"the protobuf body is malformed: field {number} ({known.name}) of {name} at "
            f"{path} could not be read as its type ({wire} data)"
        )


def _to_json(msg: Any, name: str, path: str) -> Any:
    special = _SPECIAL.get(name)
    if special is not None:
        return special(msg, path)
    _check_known(msg, name, path)
    out: dict[str, Any] = {}
    for f in _MESSAGES[name]:
        value = getattr(msg, f.attr)
        where = f"{path}.{f.json}" if f.json else path
        if not f.json:  # an embedded struct: its fields are ours
            out.update(_to_json(value, f.type, path))
        elif f.shape == "list":
            if len(value):
                out[f.json] = [_value(v, f.type, f"{where}[{i}]") for i, v in enumerate(value)]
            elif f.always:
                out[f.json] = None
        elif f.shape == "map":
            if len(value):
                out[f.json] = {
                    _text(k): _value(v, f.type, f"{where}[{_text(k)}]") for k, v in value.items()
                }
            elif f.always:
                out[f.json] = None
        elif f.pointer:
            if msg.HasField(f.attr):
                out[f.json] = _value(value, f.type, where)
            elif f.always:
                out[f.json] = None
        elif f.type in _MESSAGES or f.always or value != _ZERO[f.type]:
            # (Go's JSON writes a struct whether set or not: omitempty never leaves one out)
            out[f.json] = _value(value, f.type, where)
    return out


def _value(value: Any, type_name: str, path: str) -> Any:
    if type_name == "bytes":
        return base64.b64encode(value).decode()
    if type_name == "string":
        return _text(value)
    if type_name in _SCALARS:
        return value
    return _to_json(value, type_name, path)


def _time(msg: Any, path: str) -> str | None:
    _check_known(msg, "Time", path)
    # metav1.Time: an empty message is the zero time (JSON null); otherwise whole seconds,
    # in UTC, as RFC 3339 (kube drops the nanoseconds when it decodes).
    if msg.ByteSize() == 0:
        return None
    seconds = msg.seconds
    try:
        when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise errors.BadRequest(f"{path}: the time {seconds}s is out of range") from None
    return when.replace(tzinfo=None).isoformat() + "Z"


def _int_or_string(msg: Any, path: str) -> int | str:
    _check_known(msg, "IntOrString", path)
    kind = msg.type
    if kind == 0:
        return int(msg.intVal)
    if kind == 1:
        return _text(msg.strVal)
    raise errors.BadRequest(f"{path}: IntOrString of unknown type {kind}")


def _quantity(msg: Any, path: str) -> str:
    _check_known(msg, "Quantity", path)
    # A Quantity without its string is the zero quantity, which Go's JSON writes as "0".
    return _text(msg.string) or "0"


def _fields_v1(msg: Any, path: str) -> Any:
    _check_known(msg, "FieldsV1", path)
    raw = msg.Raw
    if not raw:
        return None
    try:
        return orjson.loads(raw)  # FieldsV1 holds JSON, and is that JSON in JSON
    except orjson.JSONDecodeError as e:
        raise errors.BadRequest(f"{path}: fieldsV1 is not valid JSON: {e}") from None


def _extra_value(msg: Any, path: str) -> list[str] | None:
    _check_known(msg, "ExtraValue", path)
    # ExtraValue is a []string in Go, wrapped only for protobuf: its JSON is the list.
    items = [_text(item) for item in msg.items]
    return items or None


_SPECIAL: dict[str, Callable[[Any, str], Any]] = {
    "Time": _time,
    "IntOrString": _int_or_string,
    "Quantity": _quantity,
    "FieldsV1": _fields_v1,
    "ExtraValue": _extra_value,
}
