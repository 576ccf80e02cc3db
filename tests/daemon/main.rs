//! Integration tests: real example daemons started from real, sometimes hostile, conditions,
//! inspected through /proc and the filesystem.

mod asynchronous;
mod descriptors;
mod failures;
mod hardening;
mod harness;
mod hostile;
mod lifecycle;
mod logging;
mod pidfile;
mod privileges;
mod readiness;
mod review;
mod startup;
mod stress;
mod supervisors;
mod support;
mod systemd;
mod systemd_boot;
mod upgrade;
