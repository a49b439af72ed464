//! Programs run as processes, for what only a process shows (a signal, an exit status, a log):
//! our own binaries built once per test process ([`bins`]), `weft-control-plane` and
//! `weft-proxy` on loopback ([`control_plane_process`], [`proxy_process`], both on
//! [`logged_process`]), and programs nobody here wrote used as real peers ([`programs`], and
//! `tests/e2e/peers.py` on this host in [`local_peer`]).

pub mod bins;
pub mod control_plane_process;
pub mod local_peer;
pub mod logged_process;
pub mod programs;
pub mod proxy_process;
