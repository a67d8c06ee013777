"""The fault suite's harness: a centre of real daemon processes over a real mosquitto, its
scenarios (broker and hub kills, partitions, duplicates, fuzz, security, hardware, soak) and the
hypothesis fuzzer. Used by ``tests/faults`` and ``bench/faults.py``; a dev tool, like gpiozero's
mock pins it ships in the package so both import it the same way."""
