//! bff-server on its own: the edge on a minimal router (`oneshot`, no
//! network), configuration loading, and the shell's authentication modes
//! on a one-route screen against the identity mock alone.

mod config;
mod connections;
mod edge;
mod modes;
