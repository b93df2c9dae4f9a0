//! Definitions with `sources`: asking each source in turn, and noting which one serves.

use super::entry::{Definition, NameHasher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use vaultbridge_backend_core::{BackendError, Fetched};

/// One source's answer to a read, and the source's revision when the read started.
pub(super) struct Attempt {
    pub(super) source: usize,
    pub(super) revision: Option<u64>,
    pub(super) result: Result<Fetched, BackendError>,
}

impl Attempt {
    fn temporary(&self) -> bool {
        self.result.as_ref().is_err_and(BackendError::is_temporary)
    }
}

/// The source serving each definition with `sources` that its first does not serve,
/// so that a fallback is logged once per change, not once per read.
#[derive(Debug, Default)]
pub(super) struct Fallbacks {
    serving: Mutex<HashMap<Arc<str>, usize, NameHasher>>,
}

impl Fallbacks {
    /// Asks a definition's sources in order until one answers with a value or with a
    /// failure the definition does not pass over (a denial never is). When every source
    /// failed in a way that is passed over, the first temporary failure decides (a
    /// source that could not answer might hold the secret, so it is not absent and a
    /// cached value may be served stale), else the first source's.
    pub(super) async fn fetch_in_order(&self, definition: &Definition) -> Attempt {
        let mut passed: Option<Attempt> = None;
        let last = definition.sources.len() - 1;
        for (index, source) in definition.sources.iter().enumerate() {
            let revision = source.backend.revision(Instant::now());
            let result = source.backend.fetch(&source.secret).await;
            let err = match result {
                Ok(fetched) => {
                    self.note_source(definition, index, passed.as_ref());
                    return Attempt {
                        source: index,
                        revision,
                        result: Ok(fetched),
                    };
                }
                Err(err) if !definition.fallback_on.allows(&err) => {
                    return Attempt {
                        source: index,
                        revision,
                        result: Err(err),
                    };
                }
                Err(err) => err,
            };
            if index < last {
                source.meter.fell_back(&err);
                tracing::debug!(
                    definition = %definition.name,
                    backend = %source.backend_name,
                    kind = %err.kind(),
                    temporary = err.is_temporary(),
                    "asking the next source"
                );
            }
            let attempt = Attempt {
                source: index,
                revision,
                result: Err(err),
            };
            passed = match passed {
                Some(kept) if kept.temporary() || !attempt.temporary() => Some(kept),
                _ => Some(attempt),
            };
        }
        passed.unwrap_or_else(|| Attempt {
            source: 0,
            revision: None,
            result: Err(BackendError::internal("the definition has no source")),
        })
    }

    /// Logs a change of the source serving a definition with `sources`: once when a
    /// later source starts serving it, once when the first serves it again.
    fn note_source(&self, definition: &Definition, index: usize, passed: Option<&Attempt>) {
        let previous = {
            let mut fallen_back = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
            if index == 0 {
                fallen_back.remove(&definition.name)
            } else {
                fallen_back.insert(definition.name.clone(), index)
            }
        };
        if previous.unwrap_or(0) == index {
            return;
        }
        let source = definition.sources.get(index);
        if index == 0 {
            tracing::info!(
                definition = %definition.name,
                backend = %source.backend_name,
                "the definition is served by its first source again"
            );
        } else {
            let (first, reason) = match passed {
                Some(Attempt {
                    source,
                    result: Err(err),
                    ..
                }) => (definition.sources.get(*source), err.to_string()),
                _ => (definition.sources.first(), String::new()),
            };
            tracing::warn!(
                definition = %definition.name,
                backend = %source.backend_name,
                source = index,
                passed_over = %first.backend_name,
                reason = %reason,
                "a fallback source serves the definition until an earlier source answers again"
            );
        }
    }
}
