//! The process-wide "interrupted" flag for SIGINT and SIGTERM.
//!
//! Once [`install`] has run, SIGINT and SIGTERM no longer kill the process:
//! they set a flag that the lab's waiting loops poll ([`interrupted`]), so
//! an interrupted run unwinds normally and [`crate::Lab`]'s `Drop` removes
//! every namespace. Without [`install`] (tests, library users that do their
//! own signal handling) the flag is never set and nothing changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Routes SIGINT and SIGTERM to the interrupted flag. Idempotent.
///
/// # Errors
/// If the signal handlers cannot be registered.
pub fn install() -> Result<()> {
    if FLAG.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .with_context(|| format!("cannot register a handler for signal {sig}"))?;
    }
    let _ = FLAG.set(flag);
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// Fails with "interrupted" once a signal arrived: the `?` in a loop then
/// unwinds to the owner of the [`crate::Lab`], whose drop cleans up.
///
/// # Errors
/// If [`interrupted`] is true.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted by a signal");
    }
    Ok(())
}
