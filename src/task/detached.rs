//! Where a future runs that nobody awaits: a detached task's wait for its
//! answer, or an [`OnDone`](super::OnDone) callback's.

use std::future::Future;
use std::sync::OnceLock;

use futures::StreamExt;

/// Runs `future` to completion with nobody waiting: on the current tokio
/// runtime, or, outside one, on one background thread that all such
/// futures share (they only wait for answers; one thread each would make
/// 500 detaches 500 threads).
pub(crate) fn spawn_detached<F: Future<Output = ()> + Send + 'static>(future: F) {
    type Detached = futures::future::BoxFuture<'static, ()>;
    static OUTSIDE_RUNTIME: OnceLock<futures::channel::mpsc::UnboundedSender<Detached>> =
        OnceLock::new();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        drop(runtime.spawn(future));
        return;
    }
    let sender = OUTSIDE_RUNTIME.get_or_init(|| {
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Detached>();
        // If the thread cannot start, the receiver is dropped and so is every
        // future sent: their tasks are cancelled, as a dropped handle's are.
        let _ = std::thread::Builder::new()
            .name("procpool-detached".into())
            .spawn(move || {
                futures::executor::block_on(receiver.for_each_concurrent(None, |future| future))
            });
        sender
    });
    let _ = sender.unbounded_send(Box::pin(future));
}
