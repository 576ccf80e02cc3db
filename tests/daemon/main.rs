//! Integration tests: real example daemons started from real, sometimes hostile, conditions,
//! inspected through /proc and the filesystem.

mod descriptors;
mod failures;
mod hardening;
mod harness;
mod hostile;
mod lifecycle;
mod pidfile;
mod privileges;
mod readiness;
mod review;
mod startup;
mod stress;
mod supervisors;
mod support;
mod systemd;
