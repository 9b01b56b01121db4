"""The correctness engines: ``assert_same_as_reference`` and ``gradcheck``.

One check flows one way through these modules: ``options`` (validated
arguments) -> ``plan`` (trials) -> ``sides`` (the callables and how they run)
-> ``compare`` (outputs walked in pairs) -> ``judge``/``tolerance`` (values
against the float64 truth) and ``gradients`` -> ``report`` (the verdict and
its message); ``check`` drives them, and ``sweep`` runs one short check per
size and bisects failures to where they start.

Private: the public API is what ``pytest_effective_torch`` exports.
"""
