"""What the whole suite keeps loaded.

pytester's in-process runs take away every module a run imported when it ends, so a module
first imported inside an inner run is imported again by the next one, as a second copy.
For cryptography that breaks: its Rust extension is loaded once, and keeps the curve
classes of the first copy ("curve must be an EllipticCurve instance" in whichever test
makes a key next, depending on which tests a worker ran before). For the plugin's heavier
modules it costs each inner run their import time again. Loaded here, before any test,
they stay loaded for every test of the suite, whatever order xdist gives them.
"""

import pytest_ntinvariants.invariants
import pytest_ntinvariants.operators
import pytest_ntinvariants.report
import pytest_ntinvariants.tls  # noqa: F401
