"""The worker's Kafka code: how it connects, which topics it declares, which offsets it trusts.

``connection`` is the one connection configuration (TLS, SASL) every Kafka client of every
command is built from, ``topics`` declares the topics with their partition counts, ``offsets``
keeps commits behind the work applied (pure), ``end_offsets`` finds the end offsets table
recovery can trust, and ``consumer`` is Faust's group consumer with those corrections, which
the app installs. The command-line tools use the connection and the topics too; their own
Kafka work is in ``badges/tools/``, and the embedded broker of ``badges dev`` and the tests is
``badges/embedded_broker.py``.
"""
