//! The running model: backstores opened, targets with their LUN maps and ACLs.
