"""MLLP adapters: HL7 v2 in (``mllp-listener``) and out (``mllp-sender``), with TLS and mutual TLS.

Modules
- :mod:`.framing`  sans-I/O MLLP decoder tolerant of real senders, encoder, MLLPv2 byte ACK/NAK.
- :mod:`.ack`      HL7 ACKs: original (AA/AE/AR) and enhanced (CA/CE/CR, MSH-15/16) mode, ERR
                   segments with locations and codes but no values; reading ACKs (MSA-1, MSA-2).
- :mod:`.dedup`    the listener's duplicate window (sender + MSH-10).
- :mod:`.tls`      ``ssl.SSLContext`` for server and client from the shared ``tls`` config block.
- :mod:`.listener` ``MllpListener``: MLLP -> Kafka, ACK only after ``acks=all``.
- :mod:`.sender`   ``MllpSender``: Kafka -> MLLP receiver, commit only after the ACK.

A pipeline configuration uses them by entry-point name::

    plugins:
      - id: hl7_in
        class: mllp-listener
        config:
          host: 0.0.0.0
          port: ${MLLP_PORT:-2575}
          bootstrap_servers: ${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}
          topic: hl7.inbound                 # rejects go to hl7.inbound.rejected
          key_secret: ${MLLP_KEY_SECRET}     # HMAC key for PHI-free record keys
          on_kafka_unavailable: nak          # or hold (bounded by hold_timeout_s)
      - id: hl7_out
        class: mllp-sender
        config:
          host: ${DOWNSTREAM_HOST}
          port: ${DOWNSTREAM_PORT:-2575}
          topic: hl7.outbound                # dead letters go to hl7.outbound.dlq
          group_id: pyheart-mllp-out
          tls: {enabled: true, ca_file: /etc/pyheart/ca.pem}

Importing this package does no work and imports no Kafka client.
"""
