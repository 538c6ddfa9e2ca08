"""The Kafka work of the command-line tools, with synchronous confluent-kafka clients.

``config_topic`` reads and publishes the configuration topic (the CLI, dev mode, the tests and
the benchmark), ``control`` builds and sends the operator requests that the worker owning a
partition acts on (the admin API sends the same requests with the worker's producer), and
``replay`` is ``badges replay``. The commands' arguments and output are in ``badges/cli/``; the
Kafka code the worker itself runs on, which these tools use too (the connection, the topics), is
in ``badges/kafka/``.
"""
