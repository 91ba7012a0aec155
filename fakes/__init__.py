"""Loopback stand-ins for what the pipeline talks to, shared by the tests, `make rehearse` and `make bench-prep`:
a synthetic dataset archive shaped like Zenodo's, a fault-injecting HTTP server, a moto server for S3 and Step
Functions, moto's ASL interpreter with the `jsonata` engine and the pieces it lacks (stepfunctions.py), and a tiny
random GPT-J saved like a Hub model. They need the dev dependencies (moto, torch, the virtualenv's Node.js)."""
