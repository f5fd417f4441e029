//! PDU wire format: the 48-byte basic header segment, data segments, digests, text keys.
