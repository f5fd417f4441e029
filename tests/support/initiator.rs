//! The tests' iSCSI initiator: blocking std sockets, no error recovery, and nothing it
//! refuses to send. Well-formed traffic (login with chosen keys and CHAP, SCSI commands
//! with immediate / unsolicited / solicited data, Data-Out, TMF, NOP-Out, Text, Logout)
//! comes from the high-level calls; anything else goes out with [`Session::send_raw`] or
//! [`Session::encode_with`].
//!
//! Received bytes are buffered, so a receive that times out never loses half a PDU.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use md5::Digest;
use rustiscsi::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};

/// Default initiator name.
pub const INITIATOR: &str = "iqn.2026-11.org.example:raw";

/// How long a high-level call waits for the target before it reports [`RecvError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// One received PDU.
#[derive(Debug, Clone)]
pub struct Pdu {
    /// Basic header segment.
    pub bhs: Bhs,
    /// Additional header segments.
    pub ahs: Vec<u8>,
    /// Data segment (without padding and digest).
    pub data: Vec<u8>,
}

impl Pdu {
    /// The opcode.
    pub fn op(&self) -> Opcode {
        self.bhs.opcode()
    }
}

/// Why a receive failed.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing complete arrived in time.
    Timeout,
    /// The target closed the connection (EOF or reset).
    Closed,
    /// Another socket error.
    Io(std::io::Error),
    /// The target's header digest is wrong.
    HeaderDigest,
    /// The target's data digest is wrong.
    DataDigest,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Login choices. `None` keys are not offered (the RFC default then applies unless the
/// target proposes otherwise).
#[derive(Debug, Clone)]
pub struct LoginOpts {
    /// InitiatorName.
    pub initiator: String,
    /// TargetName; None logs in a discovery session.
    pub target: Option<String>,
    /// ISID.
    pub isid: [u8; 6],
    /// Offer (only) CRC32C header digests.
    pub header_digest: bool,
    /// Offer (only) CRC32C data digests.
    pub data_digest: bool,
    /// ImmediateData offer.
    pub immediate_data: Option<bool>,
    /// InitialR2T offer.
    pub initial_r2t: Option<bool>,
    /// FirstBurstLength offer.
    pub first_burst: Option<u32>,
    /// MaxBurstLength offer.
    pub max_burst: Option<u32>,
    /// The MaxRecvDataSegmentLength we declare.
    pub mrdsl: u32,
    /// Further keys, sent as given (after the ones above) in the operational stage.
    pub extra: Vec<(String, String)>,
    /// Answer CHAP MD5 as (user, secret); None offers AuthMethod=None.
    pub chap: Option<(String, String)>,
    /// With `chap`: also challenge the target and require it to answer as (user, secret).
    pub mutual: Option<(String, String)>,
}

impl LoginOpts {
    /// A normal session to `target` from ISID ...`n`, no digests, ImmediateData=Yes,
    /// InitialR2T=No, FirstBurstLength 64 KiB, MaxBurstLength 256 KiB, MRDSL 256 KiB.
    pub fn normal(target: &str, n: u32) -> Self {
        let isid = [
            0x80,
            0x12,
            (n >> 24) as u8,
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
        ];
        LoginOpts {
            initiator: INITIATOR.into(),
            target: Some(target.into()),
            isid,
            header_digest: false,
            data_digest: false,
            immediate_data: Some(true),
            initial_r2t: Some(false),
            first_burst: Some(65536),
            max_burst: Some(262_144),
            mrdsl: 262_144,
            extra: Vec::new(),
            chap: None,
            mutual: None,
        }
    }

    /// A discovery session from ISID ...`n`.
    pub fn discovery(n: u32) -> Self {
        let mut o = Self::normal("", n);
        o.target = None;
        o.immediate_data = None;
        o.initial_r2t = None;
        o.first_burst = None;
        o.max_burst = None;
        o.mrdsl = 8192;
        o
    }

    /// Sets the initiator name.
    pub fn initiator(mut self, name: &str) -> Self {
        self.initiator = name.into();
        self
    }

    /// CRC32C header and data digests.
    pub fn digests(mut self) -> Self {
        self.header_digest = true;
        self.data_digest = true;
        self
    }

    /// CHAP MD5 as `user` with `secret`.
    pub fn chap(mut self, user: &str, secret: &str) -> Self {
        self.chap = Some((user.into(), secret.into()));
        self
    }

    /// Mutual CHAP: the target must answer our challenge as `user` with `secret`.
    pub fn mutual(mut self, user: &str, secret: &str) -> Self {
        self.mutual = Some((user.into(), secret.into()));
        self
    }
}

/// The answer to a SCSI command.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// SCSI status.
    pub status: u8,
    /// iSCSI response code (0 = completed at target).
    pub response: u8,
    /// Data-In, assembled.
    pub data: Vec<u8>,
    /// Sense data (without the 2-byte length).
    pub sense: Vec<u8>,
    /// R2Ts seen (offset, length).
    pub r2ts: Vec<(u32, u32)>,
}

impl Reply {
    /// (sense key, ASC, ASCQ) of fixed-format sense, or zeros.
    pub fn sense_key(&self) -> (u8, u8, u8) {
        if self.sense.len() >= 14 {
            (self.sense[2] & 0xf, self.sense[12], self.sense[13])
        } else {
            (0, 0, 0)
        }
    }
}

/// A SCSI command for [`Session::command`].
#[derive(Debug, Clone, Copy)]
pub struct Cmd<'a> {
    /// LUN (flat / peripheral addressing for < 256).
    pub lun: u64,
    /// CDB (up to 16 bytes).
    pub cdb: &'a [u8],
    /// Expected Data-In length (R bit when > 0).
    pub read_len: u32,
    /// Write data (W bit when non-empty); EDTL = its length.
    pub write: &'a [u8],
    /// Immediate delivery (I bit): no CmdSN consumed.
    pub immediate: bool,
    /// Task attribute (0 untagged, 1 simple, 2 ordered, 3 head of queue, 4 ACA).
    pub attr: u8,
}

impl<'a> Cmd<'a> {
    /// A command without data.
    pub fn none(lun: u64, cdb: &'a [u8]) -> Self {
        Cmd {
            lun,
            cdb,
            read_len: 0,
            write: &[],
            immediate: false,
            attr: 1,
        }
    }
    /// A read of `len` bytes.
    pub fn read(lun: u64, cdb: &'a [u8], len: u32) -> Self {
        Cmd {
            read_len: len,
            ..Self::none(lun, cdb)
        }
    }
    /// A write of `data`.
    pub fn write(lun: u64, cdb: &'a [u8], data: &'a [u8]) -> Self {
        Cmd {
            write: data,
            ..Self::none(lun, cdb)
        }
    }
}

/// An 8-byte LUN field for `lun` (SAM peripheral / flat addressing).
pub fn lun_field(lun: u64) -> u64 {
    if lun < 256 {
        lun << 48
    } else {
        (0x4000 | (lun & 0x3fff)) << 48
    }
}

/// One connection (and session: one connection per session).
pub struct Session {
    s: TcpStream,
    rbuf: Vec<u8>,
    /// Header digests in use.
    pub hd: bool,
    /// Data digests in use.
    pub dd: bool,
    /// The next CmdSN to send.
    pub cmdsn: u32,
    /// ExpStatSN to send.
    pub exp_statsn: u32,
    /// Highest MaxCmdSN seen (RFC 7143 §4.2.2.1: lower values are ignored).
    pub max_cmdsn: u32,
    /// Latest ExpCmdSN seen.
    pub exp_cmdsn: u32,
    next_itt: u32,
    /// Every key the target sent during login, in order.
    pub login_keys: Vec<(String, String)>,
    /// Negotiated: ImmediateData.
    pub immediate_data: bool,
    /// Negotiated: InitialR2T.
    pub initial_r2t: bool,
    /// Negotiated: FirstBurstLength.
    pub first_burst: u32,
    /// Negotiated: MaxBurstLength.
    pub max_burst: u32,
    /// The target's declared MaxRecvDataSegmentLength.
    pub target_mrdsl: u32,
    /// Answer the target's NOP-In pings while waiting for something else.
    pub answer_pings: bool,
    /// Receive timeout of the high-level calls.
    pub timeout: Duration,
    stash: VecDeque<Pdu>,
    /// TSIH the target assigned.
    pub tsih: u16,
}

/// Parses an iSCSI numeric value: decimal or `0x` hex (RFC 7143 §6.1).
pub fn parse_num(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Encodes key=value pairs as a text data segment.
pub fn text_data(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Decodes a text data segment.
pub fn parse_text(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = String::from_utf8_lossy(s);
            match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (s.to_string(), String::new()),
            }
        })
        .collect()
}

fn padding(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn crc(data: &[u8]) -> [u8; 4] {
    crc32c::crc32c(data).to_le_bytes()
}

/// Options for [`Session::encode_with`]: deliberate damage.
#[derive(Debug, Default, Clone, Copy)]
pub struct Damage {
    /// Flip a bit of the header digest.
    pub header_digest: bool,
    /// Flip a bit of the data digest.
    pub data_digest: bool,
    /// Leave DataSegmentLength as set in the header (instead of the real length).
    pub keep_dsl: bool,
    /// Add a data digest even for an empty data segment (a broken initiator).
    pub digest_on_empty: bool,
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    /// The target answered with a non-zero status (class, detail).
    Status(u8, u8),
    /// The connection failed or timed out.
    Recv(RecvError),
    /// Connect failed.
    Connect(std::io::Error),
    /// The target never let us into the full feature phase.
    Stuck(String),
    /// Mutual CHAP: the target's CHAP_N or CHAP_R was not what its secret gives.
    BadMutualAnswer,
}

/// What [`login`] reports when the target's answer to our challenge is missing or wrong
/// (the login itself was accepted).
pub const BAD_MUTUAL_ANSWER: (u8, u8) = (0xfe, 0xfe);

/// Logs `initiator` in to `target` (`None`: a discovery session) at `addr` from ISID
/// `80 00 00 00 00 isid`, answering CHAP MD5 with `chap` = (user, secret) when given,
/// offering no digests. Err: the login status (class, detail); `(0xff, 0xff)` when the
/// connection failed, `(0xff, 0)` when the target stopped answering.
pub fn login(
    addr: &str,
    initiator: &str,
    target: Option<&str>,
    isid: u8,
    chap: Option<(&str, &str)>,
) -> Result<Session, (u8, u8)> {
    let mut o = match target {
        Some(t) => LoginOpts::normal(t, 0),
        None => LoginOpts::discovery(0),
    }
    .initiator(initiator);
    o.isid = [0x80, 0, 0, 0, 0, isid];
    if let Some((user, secret)) = chap {
        o = o.chap(user, secret);
    }
    login_opts(addr, &o)
}

/// [`login`] with CHAP MD5 both ways. Err [`BAD_MUTUAL_ANSWER`]: the target's CHAP_N or
/// CHAP_R was not what `mutual` = (user, secret) gives.
pub fn login_mutual(
    addr: &str,
    initiator: &str,
    target: &str,
    isid: u8,
    chap: (&str, &str),
    mutual: (&str, &str),
) -> Result<Session, (u8, u8)> {
    let mut o = LoginOpts::normal(target, 0)
        .initiator(initiator)
        .chap(chap.0, chap.1)
        .mutual(mutual.0, mutual.1);
    o.isid = [0x80, 0, 0, 0, 0, isid];
    login_opts(addr, &o)
}

fn login_opts(addr: &str, o: &LoginOpts) -> Result<Session, (u8, u8)> {
    let addr: SocketAddr = addr.parse().expect("a socket address");
    Session::login(addr, o).map_err(|e| match e {
        LoginError::Status(class, detail) => (class, detail),
        LoginError::Connect(_) => (0xff, 0xff),
        LoginError::Recv(_) | LoginError::Stuck(_) => (0xff, 0),
        LoginError::BadMutualAnswer => BAD_MUTUAL_ANSWER,
    })
}

/// The CHAP MD5 response: MD5(id || secret || challenge), as `0x` hex.
fn chap_md5(id: u8, secret: &str, challenge: &[u8]) -> String {
    let mut h = md5::Md5::new();
    h.update([id]);
    h.update(secret.as_bytes());
    h.update(challenge);
    format!("0x{}", hex::encode(h.finalize()))
}

impl Session {
    /// A bare TCP connection (no login yet).
    pub fn connect(addr: SocketAddr) -> std::io::Result<Session> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        Ok(Self::from_stream(s))
    }

    /// Wraps an already connected stream.
    pub fn from_stream(s: TcpStream) -> Session {
        let _ = s.set_nodelay(true);
        Session {
            s,
            rbuf: Vec::new(),
            hd: false,
            dd: false,
            cmdsn: 1,
            exp_statsn: 0,
            max_cmdsn: 1,
            exp_cmdsn: 1,
            next_itt: 0x1000,
            login_keys: Vec::new(),
            immediate_data: true,
            initial_r2t: true,
            first_burst: 65536,
            max_burst: 262_144,
            target_mrdsl: 8192,
            answer_pings: true,
            timeout: DEFAULT_TIMEOUT,
            stash: VecDeque::new(),
            tsih: 0,
        }
    }

    /// The socket (for raw tricks: shutdown, buffer sizes).
    pub fn stream(&self) -> &TcpStream {
        &self.s
    }

    /// Connects and logs in.
    pub fn login(addr: SocketAddr, o: &LoginOpts) -> Result<Session, LoginError> {
        let mut s = Session::connect(addr).map_err(LoginError::Connect)?;
        s.do_login(o)?;
        Ok(s)
    }

    /// A new ITT.
    pub fn itt(&mut self) -> u32 {
        self.next_itt = self.next_itt.wrapping_add(1);
        if self.next_itt == RESERVED_TAG {
            self.next_itt = 1;
        }
        self.next_itt
    }

    /// An immediate request header (I bit) with `flags`, `itt` and the current CmdSN.
    fn immediate_header(&self, op: Opcode, flags: u8, itt: u32) -> Bhs {
        let mut b = Bhs::new(op);
        b.0[0] |= 0x40;
        b.set_flags(flags);
        b.set_itt(itt);
        b.set_cmdsn(self.cmdsn);
        b
    }

    fn login_pdu(&mut self, o: &LoginOpts, flags: u8, data: &[u8]) -> Result<Pdu, LoginError> {
        let mut b = self.immediate_header(Opcode::LOGIN_REQUEST, flags, 0x4c00);
        b.0[8..14].copy_from_slice(&o.isid);
        b.set_exp_statsn(self.exp_statsn);
        self.send(&b, data)
            .map_err(|e| LoginError::Recv(RecvError::Io(e)))?;
        let r = self.recv().map_err(LoginError::Recv)?;
        if r.op() != Opcode::LOGIN_RESPONSE {
            return Err(LoginError::Stuck(format!("got {:?} during login", r.op())));
        }
        if r.bhs.0[36] != 0 {
            return Err(LoginError::Status(r.bhs.0[36], r.bhs.0[37]));
        }
        self.exp_statsn = r.bhs.statsn().wrapping_add(1);
        Ok(r)
    }

    /// Security stage (AuthMethod=None) then operational stage; answers keys the target
    /// proposes by accepting its value.
    pub fn do_login(&mut self, o: &LoginOpts) -> Result<(), LoginError> {
        let mut first: Vec<(&str, &str)> = vec![("InitiatorName", o.initiator.as_str())];
        match &o.target {
            Some(t) => {
                first.push(("SessionType", "Normal"));
                first.push(("TargetName", t.as_str()));
            }
            None => first.push(("SessionType", "Discovery")),
        }
        let r = match &o.chap {
            None => {
                first.push(("AuthMethod", "None"));
                self.login_pdu(o, 0x80 | 0x01, &text_data(&first))?
            }
            Some(chap) => {
                first.push(("AuthMethod", "CHAP"));
                self.chap(o, &first, chap)?
            }
        };
        self.login_keys.extend(parse_text(&r.data));
        if r.bhs.flags() & 0x83 != 0x81 {
            return Err(LoginError::Stuck(format!(
                "security stage answered with flags {:#x}",
                r.bhs.flags()
            )));
        }
        let mut op: Vec<(String, String)> = Vec::new();
        let dg = |on: bool| if on { "CRC32C" } else { "None" };
        op.push(("HeaderDigest".into(), dg(o.header_digest).into()));
        op.push(("DataDigest".into(), dg(o.data_digest).into()));
        op.push(("MaxRecvDataSegmentLength".into(), o.mrdsl.to_string()));
        let yn = |b: bool| if b { "Yes" } else { "No" };
        if let Some(v) = o.immediate_data {
            op.push(("ImmediateData".into(), yn(v).into()));
        }
        if let Some(v) = o.initial_r2t {
            op.push(("InitialR2T".into(), yn(v).into()));
        }
        if let Some(v) = o.first_burst {
            op.push(("FirstBurstLength".into(), v.to_string()));
        }
        if let Some(v) = o.max_burst {
            op.push(("MaxBurstLength".into(), v.to_string()));
        }
        // ERL 0, one connection, in-order data: what the target implements.
        for (k, v) in [
            ("ErrorRecoveryLevel", "0"),
            ("MaxConnections", "1"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
        ] {
            op.push((k.into(), v.into()));
        }
        for (k, v) in &o.extra {
            op.retain(|(ok, _)| ok != k);
            op.push((k.clone(), v.clone()));
        }
        let offered: Vec<String> = op.iter().map(|(k, _)| k.clone()).collect();
        let mut send = op;
        for _round in 0..6 {
            let pairs: Vec<(&str, &str)> =
                send.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let r = self.login_pdu(o, 0x80 | 0x04 | 0x03, &text_data(&pairs))?;
            let got = parse_text(&r.data);
            self.login_keys.extend(got.iter().cloned());
            if r.bhs.flags() & 0x83 == 0x83 {
                self.tsih = r.bhs.u16_at(14);
                self.exp_cmdsn = r.bhs.exp_statsn();
                self.max_cmdsn = r.bhs.max_cmdsn();
                self.finish_login(o);
                return Ok(());
            }
            // The target holds the stage: it proposed keys of its own; accept them.
            send = got
                .into_iter()
                .filter(|(k, _)| !offered.contains(k) && k != "TargetPortalGroupTag")
                .filter(|(k, _)| k != "TargetAlias")
                .collect();
        }
        Err(LoginError::Stuck(
            "operational stage never completed".into(),
        ))
    }

    /// The security stage with CHAP MD5 (RFC 7143 §12.1.3): offer CHAP, ask for MD5,
    /// answer the challenge (and challenge the target for mutual CHAP); returns the
    /// response that ends the stage.
    fn chap(
        &mut self,
        o: &LoginOpts,
        first: &[(&str, &str)],
        (user, secret): &(String, String),
    ) -> Result<Pdu, LoginError> {
        // CSG=0, NSG=1 without transit until the answer.
        self.login_pdu(o, 0x01, &text_data(first))?;
        let r = self.login_pdu(o, 0x01, &text_data(&[("CHAP_A", "5")]))?;
        let t = parse_text(&r.data);
        let get = |k: &str| t.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
        let (Some(id), Some(c)) = (get("CHAP_I").and_then(parse_num), get("CHAP_C")) else {
            return Err(LoginError::Stuck(format!("no CHAP challenge in {t:?}")));
        };
        let challenge = hex::decode(c.trim_start_matches("0x"))
            .map_err(|_| LoginError::Stuck(format!("CHAP_C {c} is not hex")))?;
        let response = chap_md5(id as u8, secret, &challenge);
        // Our challenge to the target (mutual CHAP): never the target's own.
        let isid = o.isid[5];
        let mid = isid.wrapping_add(101);
        let mc: Vec<u8> = (0u8..16)
            .map(|i| i.wrapping_mul(29) ^ isid ^ 0x5a)
            .collect();
        let (mid_s, mc_hex) = (mid.to_string(), format!("0x{}", hex::encode(&mc)));
        let mut answer = vec![("CHAP_N", user.as_str()), ("CHAP_R", response.as_str())];
        if o.mutual.is_some() {
            answer.push(("CHAP_I", &mid_s));
            answer.push(("CHAP_C", &mc_hex));
        }
        let r = self.login_pdu(o, 0x80 | 0x01, &text_data(&answer))?;
        if let Some((muser, msecret)) = &o.mutual {
            let t = parse_text(&r.data);
            let get = |k: &str| t.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
            let want = chap_md5(mid, msecret, &mc);
            let got = get("CHAP_R").map(str::to_ascii_lowercase);
            if get("CHAP_N") != Some(muser.as_str()) || got.as_deref() != Some(want.as_str()) {
                return Err(LoginError::BadMutualAnswer);
            }
        }
        Ok(r)
    }

    /// Waits (up to `secs`) for the target to ask for a logout (an Async Message) or close
    /// the connection.
    pub fn told_to_leave(&mut self, secs: u64) -> bool {
        match self.recv_within(Duration::from_secs(secs)) {
            Ok(p) => p.op() == Opcode::ASYNC_MESSAGE,
            Err(RecvError::Closed) | Err(RecvError::Io(_)) => true,
            Err(_) => false,
        }
    }

    fn key(&self, k: &str) -> Option<&str> {
        self.login_keys
            .iter()
            .rev()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    }

    fn finish_login(&mut self, o: &LoginOpts) {
        self.hd = self.key("HeaderDigest") == Some("CRC32C");
        self.dd = self.key("DataDigest") == Some("CRC32C");
        let yes = |v: Option<&str>, dflt: bool| v.map_or(dflt, |v| v == "Yes");
        let num = |v: Option<&str>, dflt: u32| v.and_then(parse_num).map_or(dflt, |n| n as u32);
        self.immediate_data =
            yes(self.key("ImmediateData"), true) && o.immediate_data != Some(false);
        self.initial_r2t = yes(self.key("InitialR2T"), true) || o.initial_r2t == Some(true);
        self.max_burst = num(self.key("MaxBurstLength"), 262_144);
        self.first_burst = num(self.key("FirstBurstLength"), 65536).min(self.max_burst);
        self.target_mrdsl = num(self.key("MaxRecvDataSegmentLength"), 8192);
    }

    // ---- wire ----

    /// Encodes a PDU with this connection's digests; DataSegmentLength and
    /// TotalAHSLength are filled in from `ahs` and `data`.
    pub fn encode(&self, bhs: &Bhs, ahs: &[u8], data: &[u8]) -> Vec<u8> {
        self.encode_with(bhs, ahs, data, Damage::default())
    }

    /// As [`Session::encode`], with deliberate damage.
    pub fn encode_with(&self, bhs: &Bhs, ahs: &[u8], data: &[u8], d: Damage) -> Vec<u8> {
        let mut b = *bhs;
        if !d.keep_dsl {
            let n = data.len();
            b.0[5] = (n >> 16) as u8;
            b.0[6] = (n >> 8) as u8;
            b.0[7] = n as u8;
            b.0[4] = (ahs.len() / 4) as u8;
        }
        let mut out = b.0.to_vec();
        out.extend_from_slice(ahs);
        if self.hd {
            let mut c = crc32c::crc32c(&out);
            if d.header_digest {
                c ^= 1;
            }
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(data);
        let pad = padding(data.len());
        out.resize(out.len() + pad, 0);
        if self.dd && (!data.is_empty() || d.digest_on_empty) {
            let mut c = crc32c::crc32c(data);
            c = crc32c::crc32c_append(c, &[0u8; 3][..pad]);
            if d.data_digest {
                c ^= 1;
            }
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Sends a PDU (ExpStatSN filled in when the opcode carries it).
    pub fn send(&mut self, bhs: &Bhs, data: &[u8]) -> std::io::Result<()> {
        let mut b = *bhs;
        if b.exp_statsn() == 0 && b.opcode() != Opcode::DATA_OUT {
            b.set_exp_statsn(self.exp_statsn);
        }
        let wire = self.encode(&b, &[], data);
        self.s.write_all(&wire)
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    /// Bytes of the next PDU if fully buffered: (header end, total length).
    fn complete_pdu(&self) -> Option<(usize, usize)> {
        if self.rbuf.len() < 48 {
            return None;
        }
        let ahs = self.rbuf[4] as usize * 4;
        let dlen = ((self.rbuf[5] as usize) << 16)
            | ((self.rbuf[6] as usize) << 8)
            | self.rbuf[7] as usize;
        let hdr = 48 + ahs + if self.hd { 4 } else { 0 };
        let total = hdr + dlen + padding(dlen) + if self.dd && dlen > 0 { 4 } else { 0 };
        (self.rbuf.len() >= total).then_some((hdr, total))
    }

    /// Receives the next PDU within `limit` (stashed PDUs first).
    pub fn recv_within(&mut self, limit: Duration) -> Result<Pdu, RecvError> {
        if let Some(p) = self.stash.pop_front() {
            return Ok(p);
        }
        let deadline = Instant::now() + limit;
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            if let Some((hdr, total)) = self.complete_pdu() {
                let raw: Vec<u8> = self.rbuf.drain(..total).collect();
                return self.decode(&raw, hdr);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(RecvError::Io)?;
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return Err(RecvError::Closed);
                }
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }

    fn decode(&mut self, raw: &[u8], hdr: usize) -> Result<Pdu, RecvError> {
        let bhs = Bhs(raw[..48].try_into().unwrap());
        let ahs_len = raw[4] as usize * 4;
        if self.hd {
            let want = crc(&raw[..48 + ahs_len]);
            if raw[48 + ahs_len..hdr] != want {
                return Err(RecvError::HeaderDigest);
            }
        }
        let dlen = bhs.data_segment_len();
        let data = raw[hdr..hdr + dlen].to_vec();
        if self.dd && dlen > 0 {
            let end = hdr + dlen + padding(dlen);
            if raw[end..end + 4] != crc(&raw[hdr..end]) {
                return Err(RecvError::DataDigest);
            }
        }
        let p = Pdu {
            bhs,
            ahs: raw[48..48 + ahs_len].to_vec(),
            data,
        };
        self.track(&p);
        Ok(p)
    }

    /// Sequence numbers from a response.
    fn track(&mut self, p: &Pdu) {
        let op = p.op();
        if op == Opcode::LOGIN_RESPONSE {
            return;
        }
        let exp = p.bhs.exp_statsn(); // ExpCmdSN at this offset in responses
        let max = p.bhs.max_cmdsn();
        let carries_statsn = match op {
            Opcode::DATA_IN => p.bhs.flags() & 0x01 != 0,
            Opcode::R2T => false,
            Opcode::NOP_IN => p.bhs.itt() != RESERVED_TAG,
            _ => true,
        };
        if carries_statsn {
            self.exp_statsn = p.bhs.statsn().wrapping_add(1);
        }
        if op != Opcode::DATA_IN || p.bhs.flags() & 0x01 != 0 || exp != 0 || max != 0 {
            // RFC 7143 §4.2.2.1: ignore a window whose MaxCmdSN < ExpCmdSN - 1.
            if !sn_lt(max, exp.wrapping_sub(1)) {
                self.exp_cmdsn = exp;
                if sn_lt(self.max_cmdsn, max) {
                    self.max_cmdsn = max;
                }
            }
        }
    }

    /// Receives with the default timeout.
    pub fn recv(&mut self) -> Result<Pdu, RecvError> {
        let t = self.timeout;
        self.recv_within(t)
    }

    /// Receives until `want` matches, answering target pings and stashing other PDUs for
    /// later calls.
    pub fn recv_matching(
        &mut self,
        limit: Duration,
        mut want: impl FnMut(&Pdu) -> bool,
    ) -> Result<Pdu, RecvError> {
        let deadline = Instant::now() + limit;
        let mut skipped = VecDeque::new();
        // Look at stashed PDUs first.
        while let Some(p) = self.stash.pop_front() {
            if want(&p) {
                self.stash = skipped.into_iter().chain(self.stash.drain(..)).collect();
                return Ok(p);
            }
            skipped.push_back(p);
        }
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left) {
                Ok(p) => {
                    if self.answer_pings
                        && p.op() == Opcode::NOP_IN
                        && p.bhs.itt() == RESERVED_TAG
                        && p.bhs.ttt() != RESERVED_TAG
                    {
                        let ttt = p.bhs.ttt();
                        let lun = p.bhs.lun_raw();
                        if let Err(e) = self.nop_reply(ttt, lun) {
                            break Err(RecvError::Io(e));
                        }
                        if want(&p) {
                            break Ok(p);
                        }
                        continue;
                    }
                    if want(&p) {
                        break Ok(p);
                    }
                    skipped.push_back(p);
                }
                Err(e) => break Err(e),
            }
        };
        self.stash = skipped.into_iter().chain(self.stash.drain(..)).collect();
        result
    }

    /// Waits until the target closes the connection; true when it did within `limit`.
    /// Everything received meanwhile is dropped.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut chunk = vec![0u8; 256 * 1024];
        self.rbuf.clear();
        self.stash.clear();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self
                .s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
    }

    // ---- requests ----

    /// Answers a target NOP-In ping (empty NOP-Out, ITT reserved, TTT echoed).
    pub fn nop_reply(&mut self, ttt: u32, lun: u64) -> std::io::Result<()> {
        let mut b = self.immediate_header(Opcode::NOP_OUT, 0x80, RESERVED_TAG);
        b.set_lun_raw(lun);
        b.set_ttt(ttt);
        self.send(&b, &[])
    }

    /// A NOP-Out ping header (immediate, a fresh ITT).
    pub fn nop_header(&mut self) -> Bhs {
        let itt = self.itt();
        let mut b = self.immediate_header(Opcode::NOP_OUT, 0x80, itt);
        b.set_ttt(RESERVED_TAG);
        b
    }

    /// Sends a ping carrying `data` and waits for its NOP-In; returns the echoed data.
    pub fn ping(&mut self, data: &[u8]) -> Result<Vec<u8>, RecvError> {
        let b = self.nop_header();
        let itt = b.itt();
        self.send(&b, data).map_err(RecvError::Io)?;
        let t = self.timeout;
        let r = self.recv_matching(t, |p| p.op() == Opcode::NOP_IN && p.bhs.itt() == itt)?;
        Ok(r.data)
    }

    /// A SCSI Command header for `c` with `imm` bytes of immediate data to follow; the
    /// F bit is set when `fin`. Consumes a CmdSN unless immediate.
    pub fn command_header(&mut self, c: &Cmd, fin: bool) -> Bhs {
        let itt = self.itt();
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        if c.immediate {
            b.0[0] |= 0x40;
        }
        let mut flags = c.attr & 7;
        if fin {
            flags |= 0x80;
        }
        if c.read_len > 0 {
            flags |= 0x40;
        }
        if !c.write.is_empty() {
            flags |= 0x20;
        }
        b.set_flags(flags);
        b.set_lun_raw(lun_field(c.lun));
        b.set_itt(itt);
        b.set_u32_at(20, c.read_len.max(c.write.len() as u32));
        b.set_cmdsn(self.cmdsn);
        if !c.immediate {
            self.cmdsn = self.cmdsn.wrapping_add(1);
        }
        b.0[32..32 + c.cdb.len().min(16)].copy_from_slice(&c.cdb[..c.cdb.len().min(16)]);
        b
    }

    /// Sends one Data-Out PDU.
    pub fn data_out(
        &mut self,
        itt: u32,
        ttt: u32,
        datasn: u32,
        offset: u32,
        data: &[u8],
        fin: bool,
    ) -> std::io::Result<()> {
        let mut o = Bhs::new(Opcode::DATA_OUT);
        o.set_flags(if fin { 0x80 } else { 0 });
        o.set_itt(itt);
        o.set_ttt(ttt);
        o.set_exp_statsn(self.exp_statsn);
        o.set_datasn(datasn);
        o.set_buffer_offset(offset);
        self.send(&o, data)
    }

    /// Sends `data[off..off+len]` as a sequence of Data-Out PDUs of at most the target's
    /// MaxRecvDataSegmentLength (F on the last).
    pub fn send_sequence(
        &mut self,
        itt: u32,
        ttt: u32,
        off: u32,
        data: &[u8],
    ) -> std::io::Result<()> {
        let seg = self.target_mrdsl.max(512) as usize;
        let mut sent = 0usize;
        let mut datasn = 0;
        while sent < data.len() {
            let n = (data.len() - sent).min(seg);
            let fin = sent + n == data.len();
            self.data_out(
                itt,
                ttt,
                datasn,
                off + sent as u32,
                &data[sent..sent + n],
                fin,
            )?;
            sent += n;
            datasn += 1;
        }
        Ok(())
    }

    /// Sends a command with the immediate and unsolicited data the negotiation allows;
    /// returns its ITT. Follow with [`Session::finish_command`].
    pub fn start_command(&mut self, c: &Cmd) -> std::io::Result<u32> {
        let len = c.write.len();
        let imm = if self.immediate_data {
            len.min(self.first_burst as usize)
                .min(self.target_mrdsl as usize)
        } else {
            0
        };
        let unsolicited = if self.initial_r2t {
            imm
        } else {
            len.min(self.first_burst as usize)
        };
        let b = self.command_header(c, unsolicited == imm);
        let itt = b.itt();
        self.send(&b, &c.write[..imm])?;
        if unsolicited > imm {
            self.send_sequence(itt, RESERVED_TAG, imm as u32, &c.write[imm..unsolicited])?;
        }
        Ok(itt)
    }

    /// Serves R2Ts for `itt` from `write` and collects Data-In until the status arrives.
    pub fn finish_command(&mut self, itt: u32, write: &[u8]) -> Result<Reply, RecvError> {
        let mut reply = Reply::default();
        let t = self.timeout;
        loop {
            let p = self.recv_matching(t, |p| {
                p.bhs.itt() == itt
                    && matches!(
                        p.op(),
                        Opcode::R2T | Opcode::DATA_IN | Opcode::SCSI_RESPONSE
                    )
            })?;
            match p.op() {
                Opcode::R2T => {
                    let (off, len) = (p.bhs.buffer_offset(), p.bhs.residual());
                    reply.r2ts.push((off, len));
                    let end = (off as usize + len as usize).min(write.len());
                    let start = (off as usize).min(end);
                    let ttt = p.bhs.ttt();
                    self.send_sequence(itt, ttt, off, &write[start..end])
                        .map_err(RecvError::Io)?;
                }
                Opcode::DATA_IN => {
                    let off = p.bhs.buffer_offset() as usize;
                    if reply.data.len() < off + p.data.len() {
                        reply.data.resize(off + p.data.len(), 0);
                    }
                    reply.data[off..off + p.data.len()].copy_from_slice(&p.data);
                    if p.bhs.flags() & 0x01 != 0 {
                        reply.status = p.bhs.0[3];
                        return Ok(reply);
                    }
                }
                _ => {
                    reply.response = p.bhs.0[2];
                    reply.status = p.bhs.0[3];
                    if p.data.len() > 2 {
                        let n = u16::from_be_bytes([p.data[0], p.data[1]]) as usize;
                        reply.sense = p.data[2..(2 + n).min(p.data.len())].to_vec();
                    }
                    return Ok(reply);
                }
            }
        }
    }

    /// Runs a SCSI command to its status.
    pub fn command(&mut self, c: &Cmd) -> Result<Reply, RecvError> {
        let itt = self.start_command(c).map_err(RecvError::Io)?;
        self.finish_command(itt, c.write)
    }

    /// WRITE(10) of `data` at `lba` on `lun`; panics unless GOOD.
    pub fn write_ok(&mut self, lun: u64, lba: u32, data: &[u8]) {
        let cdb = super::rw10(true, lba, (data.len() / 512) as u16);
        let r = self.command(&Cmd::write(lun, &cdb, data)).expect("write");
        assert_eq!(r.status, 0, "WRITE status, sense {:02x?}", r.sense_key());
    }

    /// READ(10) of `blocks` at `lba` on `lun`; panics unless GOOD.
    pub fn read_ok(&mut self, lun: u64, lba: u32, blocks: u16) -> Vec<u8> {
        let cdb = super::rw10(false, lba, blocks);
        let r = self
            .command(&Cmd::read(lun, &cdb, blocks as u32 * 512))
            .expect("read");
        assert_eq!(r.status, 0, "READ status, sense {:02x?}", r.sense_key());
        r.data
    }

    /// Sends a TMF request and returns its response code. `immediate` as open-iscsi does.
    pub fn tmf(
        &mut self,
        function: u8,
        lun: u64,
        rtt: u32,
        ref_cmdsn: u32,
    ) -> Result<u8, RecvError> {
        let itt = self.itt();
        let mut b = self.immediate_header(Opcode::TMF_REQUEST, 0x80 | function, itt);
        b.set_lun_raw(lun_field(lun));
        b.set_ttt(rtt);
        b.set_max_cmdsn(ref_cmdsn); // RefCmdSN
        self.send(&b, &[]).map_err(RecvError::Io)?;
        let t = self.timeout;
        let r = self.recv_matching(t, |p| p.op() == Opcode::TMF_RESPONSE && p.bhs.itt() == itt)?;
        Ok(r.bhs.0[2])
    }

    /// A Text Request header (not immediate, consumes no CmdSN beyond itself).
    pub fn text_header(&mut self, itt: u32, ttt: u32, fin: bool, cont: bool) -> Bhs {
        let mut b = Bhs::new(Opcode::TEXT_REQUEST);
        b.set_flags(if fin { 0x80 } else { 0 } | if cont { 0x40 } else { 0 });
        b.set_itt(itt);
        b.set_ttt(ttt);
        b.set_cmdsn(self.cmdsn);
        self.cmdsn = self.cmdsn.wrapping_add(1);
        b
    }

    /// One Text exchange: sends `data` (F=1) and follows continued answers (C bit) to the
    /// end; returns every key of the answer.
    pub fn text(&mut self, data: &[u8]) -> Result<Vec<(String, String)>, RecvError> {
        let itt = self.itt();
        let b = self.text_header(itt, RESERVED_TAG, true, false);
        self.send(&b, data).map_err(RecvError::Io)?;
        let mut body = Vec::new();
        let t = self.timeout;
        loop {
            let r = self.recv_matching(t, |p| {
                p.bhs.itt() == itt && matches!(p.op(), Opcode::TEXT_RESPONSE | Opcode::REJECT)
                    || p.op() == Opcode::REJECT
            })?;
            if r.op() == Opcode::REJECT {
                return Err(RecvError::Io(std::io::Error::other(format!(
                    "Text rejected, reason {:#x}",
                    r.bhs.0[2]
                ))));
            }
            body.extend_from_slice(&r.data);
            if r.bhs.flags() & 0x80 != 0 {
                return Ok(parse_text(&body));
            }
            let b = self.text_header(itt, r.bhs.ttt(), true, false);
            self.send(&b, &[]).map_err(RecvError::Io)?;
        }
    }

    /// Logs out (close session); true when the target answered OK.
    pub fn logout(&mut self) -> bool {
        let itt = self.itt();
        let b = self.immediate_header(Opcode::LOGOUT_REQUEST, 0x80, itt);
        if self.send(&b, &[]).is_err() {
            return false;
        }
        let t = self.timeout;
        matches!(
            self.recv_matching(t, |p| p.op() == Opcode::LOGOUT_RESPONSE),
            Ok(p) if p.bhs.0[2] == 0
        )
    }
}

/// Serial number arithmetic (RFC 1982, 32 bits): a < b.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}
