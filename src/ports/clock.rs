//! The wall clock, as a port: what waits on it (deploy windows, approval timeouts) reads the
//! time through [`Clock`], so tests set the time instead of sleeping until it.

/// What time it is.
pub trait Clock: Send + Sync {
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}
