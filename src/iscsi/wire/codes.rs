//! Status and reason codes carried in responses (RFC 7143 §11).

/// Login response status class and detail (RFC 7143 §11.13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginStatus {
    /// Status-Class.
    pub class: u8,
    /// Status-Detail.
    pub detail: u8,
}

impl LoginStatus {
    /// Success.
    pub const SUCCESS: Self = Self::new(0x00, 0x00);
    /// Initiator error (miscellaneous).
    pub const INITIATOR_ERROR: Self = Self::new(0x02, 0x00);
    /// Authentication failure.
    pub const AUTH_FAILED: Self = Self::new(0x02, 0x01);
    /// Authorization failure: the initiator may not access this target.
    pub const FORBIDDEN: Self = Self::new(0x02, 0x02);
    /// Target not found.
    pub const NOT_FOUND: Self = Self::new(0x02, 0x03);
    /// Target removed.
    pub const TARGET_REMOVED: Self = Self::new(0x02, 0x04);
    /// Unsupported version.
    pub const UNSUPPORTED_VERSION: Self = Self::new(0x02, 0x05);
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: Self = Self::new(0x02, 0x06);
    /// Missing parameter (e.g. InitiatorName).
    pub const MISSING_PARAMETER: Self = Self::new(0x02, 0x07);
    /// Cannot include the connection in the session.
    pub const CANT_INCLUDE_IN_SESSION: Self = Self::new(0x02, 0x08);
    /// Session type not supported.
    pub const SESSION_TYPE_UNSUPPORTED: Self = Self::new(0x02, 0x09);
    /// Session does not exist.
    pub const SESSION_DOES_NOT_EXIST: Self = Self::new(0x02, 0x0a);
    /// Invalid request during login.
    pub const INVALID_DURING_LOGIN: Self = Self::new(0x02, 0x0b);
    /// Target error.
    pub const TARGET_ERROR: Self = Self::new(0x03, 0x00);
    /// Service unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self::new(0x03, 0x01);
    /// Out of resources.
    pub const OUT_OF_RESOURCES: Self = Self::new(0x03, 0x02);

    /// A status from its two bytes.
    pub const fn new(class: u8, detail: u8) -> Self {
        Self { class, detail }
    }

    /// What the status means, for logs.
    pub fn describe(&self) -> &'static str {
        match (self.class, self.detail) {
            (0, _) => "success",
            (2, 0x01) => "authentication failed",
            (2, 0x02) => "initiator not allowed",
            (2, 0x03) => "target not found",
            (2, 0x04) => "target removed",
            (2, 0x05) => "unsupported version",
            (2, 0x06) => "too many connections",
            (2, 0x07) => "missing parameter",
            (2, 0x08) => "cannot include in session",
            (2, 0x09) => "session type not supported",
            (2, 0x0a) => "session does not exist",
            (2, 0x0b) => "invalid request during login",
            (2, _) => "initiator error",
            (3, 0x01) => "service unavailable",
            (3, 0x02) => "out of resources",
            _ => "target error",
        }
    }
}

/// Reject reasons (RFC 7143 §11.17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectReason {
    /// Data (payload) digest error.
    DataDigestError = 0x02,
    /// SNACK reject.
    SnackReject = 0x03,
    /// Protocol error (e.g. SNACK at ERL 0).
    ProtocolError = 0x04,
    /// Command not supported.
    CommandNotSupported = 0x05,
    /// Immediate command rejected: too many immediate commands.
    ImmediateCommandReject = 0x06,
    /// Task in progress.
    TaskInProgress = 0x07,
    /// Invalid data ACK.
    InvalidDataAck = 0x08,
    /// Invalid PDU field.
    InvalidPduField = 0x09,
    /// Long operation reject: out of resources.
    LongOpReject = 0x0a,
    /// Waiting for logout.
    WaitingForLogout = 0x0c,
}

/// Task management function codes (RFC 7143 §11.5.1).
pub mod tmf {
    /// ABORT TASK.
    pub const ABORT_TASK: u8 = 1;
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: u8 = 2;
    /// CLEAR ACA.
    pub const CLEAR_ACA: u8 = 3;
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: u8 = 4;
    /// LOGICAL UNIT RESET.
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    /// TARGET WARM RESET.
    pub const TARGET_WARM_RESET: u8 = 6;
    /// TARGET COLD RESET.
    pub const TARGET_COLD_RESET: u8 = 7;
    /// TASK REASSIGN.
    pub const TASK_REASSIGN: u8 = 8;

    /// Function complete.
    pub const RESP_COMPLETE: u8 = 0;
    /// Task does not exist.
    pub const RESP_NO_TASK: u8 = 1;
    /// LUN does not exist.
    pub const RESP_NO_LUN: u8 = 2;
    /// Task still allegiant.
    pub const RESP_ALLEGIANT: u8 = 3;
    /// Task allegiance reassignment not supported.
    pub const RESP_REASSIGN_UNSUPPORTED: u8 = 4;
    /// Task management function not supported.
    pub const RESP_NOT_SUPPORTED: u8 = 5;
    /// Function authorization failed.
    pub const RESP_AUTH_FAILED: u8 = 6;
    /// Function rejected.
    pub const RESP_REJECTED: u8 = 255;
}

/// Logout reason codes (RFC 7143 §11.14.1).
pub mod logout {
    /// Close the session.
    pub const CLOSE_SESSION: u8 = 0;
    /// Close the connection.
    pub const CLOSE_CONNECTION: u8 = 1;
    /// Remove the connection for recovery.
    pub const REMOVE_FOR_RECOVERY: u8 = 2;
    /// Response: connection or session closed successfully.
    pub const RESP_OK: u8 = 0;
    /// Response: CID not found.
    pub const RESP_CID_NOT_FOUND: u8 = 1;
    /// Response: connection recovery is not supported.
    pub const RESP_RECOVERY_UNSUPPORTED: u8 = 2;
}

/// Asynchronous event codes (RFC 7143 §11.9.1).
pub mod async_event {
    /// A SCSI asynchronous event (sense data follows).
    pub const SCSI: u8 = 0;
    /// The target requests a logout.
    pub const REQUEST_LOGOUT: u8 = 1;
    /// The target will drop this connection.
    pub const DROP_CONNECTION: u8 = 2;
    /// The target will drop all connections of the session.
    pub const DROP_SESSION: u8 = 3;
    /// The target requests parameter negotiation.
    pub const NEGOTIATE: u8 = 4;
}
