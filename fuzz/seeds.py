#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/seed-*): a few well-formed PDUs,
login exchanges, key sets and CDBs per target, in each target's input format (see the
target's doc comment). Re-run after changing a format: python3 fuzz/seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def bhs(opcode, flags=0, imm=False, ahs=b"", dlen=0, lun=0, itt=1, f20=0, f24=0, f28=0,
        f32=0, f36=0, f40=0, f44=0, cdb=b""):
    b = bytearray(48)
    b[0] = opcode | (0x40 if imm else 0)
    b[1] = flags
    b[4] = len(ahs) // 4
    b[5:8] = dlen.to_bytes(3, "big")
    b[8:16] = lun.to_bytes(8, "big")
    struct.pack_into(">IIIIIIII", b, 16, itt, f20, f24, f28, f32, f36, f40, f44)
    if cdb:
        b[32:32 + len(cdb)] = cdb
    return bytes(b)


def pdu(header, data=b"", ahs=b"", hd=False, dd=False):
    h = bytearray(header)
    h[4] = len(ahs) // 4
    h[5:8] = len(data).to_bytes(3, "big")
    out = bytes(h) + ahs
    if hd:
        out += struct.pack("<I", crc32c(out))
    pad = b"\0" * ((4 - len(data) % 4) % 4)
    out += data + pad
    if dd and data:
        out += struct.pack("<I", crc32c(data + pad))
    return out


def text(*pairs):
    return b"".join(k.encode() + b"=" + v.encode() + b"\0" for k, v in pairs)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def rw10(op, lba, blocks):
    return bytes([op, 0]) + lba.to_bytes(4, "big") + bytes([0]) + blocks.to_bytes(2, "big") + b"\0"


NOP = 0x00
SCSI = 0x01
TMF = 0x02
LOGIN = 0x03
TEXT = 0x04
DATA_OUT = 0x05
LOGOUT = 0x06
LUN0 = 0
LUN1 = 1 << 48

# ---- pdu_framing: one config byte (bit 0 header digest, bit 1 data digest, bits 4-6
# MaxRecvDataSegmentLength = 512 << n), two bytes seeding the read sizes, then PDUs.
for hd, dd, name in [(False, False, "plain"), (True, True, "digests")]:
    cfg = (1 if hd else 0) | (2 if dd else 0) | (4 << 4)
    s = bytes([cfg, 0x12, 0x34])
    s += pdu(bhs(NOP, 0x80, imm=True, itt=7, f20=0xFFFFFFFF), b"ping", hd=hd, dd=dd)
    s += pdu(bhs(SCSI, 0xA1, lun=LUN0, itt=8, f20=4096, f24=1, cdb=rw10(0x2A, 0, 8)),
             bytes(range(256)) * 4, hd=hd, dd=dd)
    s += pdu(bhs(DATA_OUT, 0x80, itt=8, f20=0xFFFFFFFF, f40=1024), b"\x55" * 3072, hd=hd, dd=dd)
    ext = struct.pack(">HBB", 17, 1, 0) + bytes(16)  # extended CDB AHS, 16 more bytes
    s += pdu(bhs(SCSI, 0xC1, lun=LUN1, itt=9, f20=512, f24=2, cdb=bytes([0x7F] + [0] * 15)),
             ahs=ext, hd=hd, dd=dd)
    s += pdu(bhs(TEXT, 0x80, itt=10, f20=0xFFFFFFFF, f24=3), text(("SendTargets", "All")),
             hd=hd, dd=dd)
    s += pdu(bhs(NOP, 0x80, imm=True, itt=11, f20=0xFFFFFFFF), hd=hd, dd=dd)  # empty
    s += pdu(bhs(LOGOUT, 0x80, imm=True, itt=12, f24=4), hd=hd, dd=dd)
    write("pdu_framing", name, s)
write("pdu_framing", "huge-length", bytes([0x70, 0, 7]) + bhs(NOP, 0x80, dlen=0xFFFFFF) + b"\x11" * 64)

# ---- login: a policy byte (0 none, 1 CHAP, 2 mutual CHAP), then per request 48 bytes of
# BHS, a big-endian u16 text length and the text.
ISID = bytes([0x80, 0x12, 0, 0, 0, 1])


def login_req(flags, cmdsn, data, cont=False, tsih=0):
    b = bytearray(bhs(LOGIN, flags | (0x40 if cont else 0), imm=True, itt=0x4C00,
                      f24=cmdsn, dlen=len(data)))
    b[8:14] = ISID
    b[14:16] = tsih.to_bytes(2, "big")
    return bytes(b) + struct.pack(">H", len(data)) + data


first = text(("InitiatorName", "iqn.2026-11.org.example:ini"), ("SessionType", "Normal"),
             ("TargetName", "iqn.2026-11.org.example:tgt"), ("AuthMethod", "None"))
ops = text(("HeaderDigest", "CRC32C,None"), ("DataDigest", "None"),
           ("MaxRecvDataSegmentLength", "262144"), ("InitialR2T", "No"),
           ("ImmediateData", "Yes"), ("FirstBurstLength", "65536"),
           ("MaxBurstLength", "262144"), ("MaxOutstandingR2T", "1"),
           ("ErrorRecoveryLevel", "0"), ("DefaultTime2Wait", "2"))
write("login", "normal", b"\0" + login_req(0x81, 1, first) + login_req(0x87, 1, ops))
write("login", "discovery", b"\0" + login_req(0x87, 1, text(
    ("InitiatorName", "iqn.2026-11.org.example:ini"), ("SessionType", "Discovery"),
    ("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "8192"))))
chap_first = first.replace(b"AuthMethod=None", b"AuthMethod=CHAP,None")
write("login", "chap", b"\x01" + login_req(0x00, 1, chap_first) +
      login_req(0x00, 1, text(("CHAP_A", "7,6,5"))) +
      login_req(0x81, 1, text(("CHAP_N", "user"), ("CHAP_R", "0x" + "00" * 32))))
write("login", "mutual-chap", b"\x02" + login_req(0x00, 1, chap_first) +
      login_req(0x00, 1, text(("CHAP_A", "5"))) +
      login_req(0x81, 1, text(("CHAP_N", "user"), ("CHAP_R", "0x" + "ab" * 16),
                              ("CHAP_I", "7"), ("CHAP_C", "0x" + "cd" * 16))))
half = len(first) // 2
write("login", "continued", b"\0" + login_req(0x00, 1, first[:half], cont=True) +
      login_req(0x81, 1, first[half:]) + login_req(0x87, 1, ops))

# ---- text_keys: 11 bytes of offer (flags, 3 x (u16, shift), max R2T), a discovery byte,
# then a text segment.
offer = bytes([0x3F]) + b"\x04\x00\x06" * 3 + b"\x08"
write("text_keys", "operational", offer + b"\0" + ops)
write("text_keys", "discovery", offer + b"\x01" + text(("SendTargets", "All"), ("HeaderDigest", "None")))
write("text_keys", "odd-values", offer + b"\0" + text(
    ("MaxBurstLength", "0x40000"), ("FirstBurstLength", "999999999999"),
    ("InitialR2T", "Maybe"), ("X-com.example.key", "v=w"), ("CHAP_C", "0bAAAAAAAAAAA="),
    ("OFMarkInt", "1~65535"), ("iSCSIProtocolLevel", "1")))

# ---- cdb: the CDB bytes.
cdbs = {
    "read10": rw10(0x28, 16, 8),
    "write16": bytes([0x8A, 0]) + (100).to_bytes(8, "big") + (8).to_bytes(4, "big") + b"\0\0",
    "inquiry-vpd83": bytes([0x12, 1, 0x83, 0, 255, 0]),
    "mode-sense10": bytes([0x5A, 0, 0x3F, 0, 0, 0, 0, 0x10, 0, 0]),
    "report-luns": bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
    "pr-out-register": bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
    "unmap": bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
    "compare-and-write": bytes([0x89, 0]) + (10).to_bytes(8, "big") + bytes([0, 0, 0, 1, 0, 0]),
    "write-same16": bytes([0x93, 0x08]) + (0).to_bytes(8, "big") + (64).to_bytes(4, "big") + b"\0\0",
    "sync-cache10": bytes([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    "report-opcodes": bytes([0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0]),
}
for k, v in cdbs.items():
    write("cdb", k, v)

# ---- scsi_execute: 2 bytes (block size 512/4096, write cache), then per command: LUN
# (0 rw, 1 ro, 2 unmapped), CDB length selector (0..4 = 6, 10, 12, 16, 32 bytes), the CDB,
# a u16 Data-Out length, the data, a u16 expected Data-In length / 4.


def cmd(lun, cdb, data=b"", expect=0):
    sel = {6: 0, 10: 1, 12: 2, 16: 3, 32: 4}[len(cdb)]
    return bytes([lun, sel]) + cdb + struct.pack(">H", len(data)) + data + struct.pack(">H", expect // 4)


blk = bytes(range(256)) * 2
seqs = {
    "inquiry-readcap": cmd(0, bytes([0x12, 0, 0, 0, 96, 0]), expect=96) +
    cmd(0, bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + b"\0\0", expect=32),
    "write-read": cmd(0, rw10(0x2A, 4, 1), blk) + cmd(0, rw10(0x28, 4, 1), expect=512) +
    cmd(1, rw10(0x2A, 4, 1), blk),
    "caw": cmd(0, rw10(0x2A, 0, 1), blk) +
    cmd(0, bytes([0x89, 0]) + bytes(8) + bytes([0, 0, 0, 1, 0, 0]), blk + blk[::-1]),
    "pr": cmd(0, bytes([0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0]), bytes(8) + (0x1234).to_bytes(8, "big") + bytes(8)) +
    cmd(0, bytes([0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]), expect=4096),
    "unmap-writesame": cmd(0, bytes([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
                           struct.pack(">HH4x", 22, 16) + (8).to_bytes(8, "big") + (8).to_bytes(4, "big") + bytes(4)) +
    cmd(0, bytes([0x93, 0x08]) + bytes(8) + (16).to_bytes(4, "big") + b"\0\0", bytes(512)),
    "mode-select": cmd(0, bytes([0x55, 0x10, 0, 0, 0, 0, 0, 0, 20, 0]),
                       bytes(8) + bytes([0x08, 0x12]) + bytes(10)),
    "ua-unmapped": cmd(2, bytes([0x00] * 6)) + cmd(2, bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), expect=256),
}
for k, v in seqs.items():
    write("scsi_execute", k, b"\x00\x00" + v)
# ---- session: 16 setup bytes (flags: 1 ImmediateData, 2 InitialR2T, 4 discovery, 8 NOP
# pings; FirstBurst, MaxBurst, initiator MRDSL shifts; MaxOutstandingR2T; ExpCmdSN u32;
# StatSN u32; queue depth; immediate commands; budget shift), then events: 0 = a PDU (48
# bytes of BHS, u16 data length, the data, a digest byte: 0xff = bad), 3 = complete a
# command (index, how: 0 aborted / 1 CHECK / 2,3 GOOD, u16 Data-In length), 4 = answer a
# TMF (response index), 5 = time step (u16 x 4 ms), 6 = send (count, idle), 7 = kill.
SETUP = bytes([0x01 | 0x08, 7, 9, 7, 1]) + (1).to_bytes(4, "big") + (100).to_bytes(4, "big") + bytes([7, 2, 2])


def ev_pdu(header, data=b"", bad=False):
    return b"\0" + header + struct.pack(">H", len(data)) + data + (b"\xff" if bad else b"\0")


SEND = b"\x06\x0f\x00"
read_cmd = ev_pdu(bhs(SCSI, 0xC1, lun=LUN0, itt=0x10, f20=4096, f24=1, cdb=rw10(0x28, 0, 8)))
write_cmd = ev_pdu(bhs(SCSI, 0xA1, lun=LUN0, itt=0x11, f20=8192, f24=2, cdb=rw10(0x2A, 8, 16)),
                   bytes(range(256)) * 16)
data_out = ev_pdu(bhs(DATA_OUT, 0x80, itt=0x11, f20=1, f40=4096), b"\x77" * 4096)
write("session", "read", SETUP + read_cmd + b"\x03\x00\x02\x10\x00" + SEND)
write("session", "write-r2t", SETUP + write_cmd + SEND + data_out + b"\x03\x00\x02\x00\x00" + SEND)
write("session", "nop-text-logout", SETUP +
      ev_pdu(bhs(NOP, 0x80, imm=True, itt=0x20, f20=0xFFFFFFFF, f24=1), b"ping") +
      ev_pdu(bhs(TEXT, 0x80, itt=0x21, f20=0xFFFFFFFF, f24=1), text(("SendTargets", "All"))) +
      SEND + ev_pdu(bhs(LOGOUT, 0x80, imm=True, itt=0x22, f24=2)) + SEND + b"\x05\xff\xff")
write("session", "tmf", SETUP + read_cmd +
      ev_pdu(bhs(TMF, 0x81, imm=True, lun=LUN0, itt=0x30, f20=0x10, f24=2, f32=1)) +
      b"\x04\x00" + ev_pdu(bhs(TMF, 0x85, imm=True, lun=LUN0, itt=0x31, f24=2)) + b"\x04\x00" +
      b"\x03\x00\x00" + SEND)
write("session", "held-cmdsn", SETUP +
      ev_pdu(bhs(SCSI, 0x81, lun=LUN0, itt=0x40, f24=2, cdb=bytes(6))) +
      ev_pdu(bhs(SCSI, 0x81, lun=LUN0, itt=0x41, f24=1, cdb=bytes(6))) +
      b"\x03\x00\x02\x00\x00\x03\x00\x02\x00\x00" + SEND + b"\x05\x00\x10" + SEND)
print("seeds written")
