"""The local edge runtime: runs an IoT Edge deployment manifest on one machine, without Azure or Docker.

Per module a mosquitto broker (TLS on 127.0.0.N:8883), one workload API (unix socket) for the modules'
SAS tokens, a router that evaluates `$edgeHub` routes and serves module twins, and the modules themselves as
processes running their production code (`edgevision capture|serve|display`). See docs/local-runtime.md.
"""
