"""The speed engine: ``assert_faster_than_reference``.

``result`` holds the options and the result type; ``run`` measures
(``calls`` builds the timed calls, ``clocks`` times them, ``memory`` takes
peaks) in interleaved rounds decided by ``stats``; ``verdict`` turns a result
into a pass, a failure, a skip or a warning; ``throughput`` turns times into
rates; ``sweep`` runs one comparison per size and decides them as a family,
``plots`` draws a sweep; ``api`` is the public function.

Private: the public API is what ``pytest_effective_torch`` exports.
"""
