//! State-machine tests with simulated time: a scripted initiator feeds PDUs, the test
//! plays the SCSI core (completing `Execute` actions) and the driver (carrying out aborts,
//! reading what the session sends). Each defect of issue 8 has a test named after it.

mod aborts;
mod bounds;
mod coverage;
mod harness;
mod ordering;
mod timers;
