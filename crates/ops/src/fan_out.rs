//! Work on many hosts at once, with results in the hosts' order.

use std::future::Future;

use futures::stream::{self, StreamExt};

/// Runs `work` on each of `items`, at most `n` at once (at least one), and returns
/// the results in the order of `items`, whatever order they finish in. A slow item
/// holds back no other: the next starts as soon as any finishes.
pub(crate) async fn in_order<I, T, F>(
    items: impl IntoIterator<Item = I>,
    n: usize,
    work: impl Fn(I) -> F,
) -> Vec<T>
where
    F: Future<Output = T>,
{
    let work = &work;
    let mut done: Vec<(usize, T)> = stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| async move { (i, work(item).await) })
        .buffer_unordered(n.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn results_keep_the_items_order_and_at_most_n_run_at_once() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let out = runtime.block_on(super::in_order([30u64, 5, 20, 1, 10], 2, |ms| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: the order comes from the items.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                ms * 2
            }
        }));
        assert_eq!(out, [60, 10, 40, 2, 20]);
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
