//! Background tasks tied to an owner's lifetime.

use tokio::task::JoinHandle;

/// Aborts its task when dropped, so a background task (a key refresher, a
/// publisher) ends with whatever owns it, also when the owner's future is
/// cancelled rather than finished.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
