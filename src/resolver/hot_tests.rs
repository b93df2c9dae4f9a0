//! The definitions' hot slots mirror the cache: what a hit reads there is what the cache
//! holds, and a value that leaves the cache is let go by its slot too.

use super::tests::{CountingBackend, definition, resolver_with};
use super::*;
use std::sync::Weak;
use std::sync::atomic::Ordering;

/// Read the backend now, whatever is cached.
const REFRESH: Freshness = Freshness {
    max_age: None,
    refresh: true,
};

/// With more definitions than `max_entries`, the cache evicts (or refuses) values; each
/// of them must be freed, not kept alive by a slot: the values alive are exactly those
/// the cache holds.
#[tokio::test]
async fn values_the_cache_lets_go_are_freed_not_kept_by_their_slots() {
    const CAPACITY: usize = 4;
    let backend = CountingBackend::new("value");
    let names: Vec<String> = (0..4 * CAPACITY).map(|i| format!("d{i}")).collect();
    let definitions: Vec<_> = names
        .iter()
        .map(|name| definition(name, backend.clone(), Duration::from_secs(600), true))
        .collect();
    let resolver = Resolver::from_definitions(definitions, CAPACITY as u64);
    let mut values: Vec<Weak<CachedSecret>> = Vec::new();
    for name in &names {
        let resolved = resolver.resolve(name).await.unwrap();
        values.push(Arc::downgrade(&resolved.secret));
    }
    // moka drops a value it refused on a later maintenance pass than the one that
    // refused it (measured: the second); a slot that kept it would keep it for good.
    let alive = || {
        values
            .iter()
            .filter(|value| value.strong_count() > 0)
            .count() as u64
    };
    let mut cached = resolver.cached_entries().await;
    for _ in 0..4 {
        if alive() == cached {
            break;
        }
        cached = resolver.cached_entries().await;
    }
    assert_eq!(cached, CAPACITY as u64);
    assert_eq!(alive(), cached, "values alive against values in the cache");
    let in_slots = names
        .iter()
        .filter(|name| {
            resolver
                .definitions
                .get(name.as_str())
                .is_some_and(|definition| definition.hot.load().is_some())
        })
        .count() as u64;
    assert_eq!(in_slots, cached, "slots holding a value");
}

/// A value read again with `refresh` replaces the slot's: the next plain read is a hit
/// on the new value, not the one read before it.
#[tokio::test]
async fn a_refreshed_value_is_what_the_next_hit_serves() {
    let backend = CountingBackend::new("old");
    let resolver = resolver_with(&backend, Duration::from_secs(600), true);
    assert_eq!(
        resolver.resolve("tok").await.unwrap().secret.value.expose(),
        b"old"
    );
    assert_eq!(
        resolver.resolve("tok").await.unwrap().cache,
        CacheOutcome::Hit
    );
    *backend.value.lock().unwrap() = "new".into();
    let refreshed = resolver.resolve_with("tok", REFRESH).await.unwrap();
    assert_eq!(refreshed.cache, CacheOutcome::Miss);
    let hit = resolver.resolve("tok").await.unwrap();
    assert_eq!(hit.cache, CacheOutcome::Hit);
    assert_eq!(hit.secret.value.expose(), b"new");
    assert_eq!(backend.calls(), 2);
}

/// A hit through the synchronous path (the HTTP face's) is the same hit, counted once;
/// a name it cannot answer at once is left to `resolve_with`.
#[tokio::test]
async fn cache_hit_answers_only_what_the_cache_holds() {
    let backend = CountingBackend::new("value");
    let resolver = resolver_with(&backend, Duration::from_secs(600), true);
    assert!(resolver.cache_hit("tok", Freshness::default()).is_none());
    assert!(resolver.cache_hit("nope", Freshness::default()).is_none());
    resolver.resolve("tok").await.unwrap();
    let hit = resolver
        .cache_hit("tok", Freshness::default())
        .expect("cached");
    assert_eq!(&*hit.definition.name, "tok");
    assert_eq!(hit.secret.value.expose(), b"value");
    assert!(resolver.cache_hit("tok", REFRESH).is_none());
    backend.gone.store(true, Ordering::SeqCst);
    resolver
        .resolve_with("tok", REFRESH)
        .await
        .expect_err("gone");
    assert!(
        resolver.cache_hit("tok", Freshness::default()).is_none(),
        "a value dropped for a permanent answer is no hit"
    );
    assert_eq!(backend.calls(), 2);
}
