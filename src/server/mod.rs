//! Sockets and tasks: the only module that does network I/O or spawns.
