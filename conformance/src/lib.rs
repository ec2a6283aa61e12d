//! Conformance cases: format, fixtures (authoritative upstreams), runner.
