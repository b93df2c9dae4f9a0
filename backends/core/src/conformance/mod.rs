//! The behaviour suite every backend runs, so that a reader who knows one backend knows
//! them all. A backend crate implements [`Fixture`] (how to seed secrets into a fresh
//! instance of the backend, how to change one while it runs, and, for a backend with
//! version stages, which labels a change moves) and calls
//! [`conformance_suite!`](crate::conformance_suite) from its tests; a new backend is
//! done when the suite passes.
//!
//! Cases read what the backend declares instead of special-casing types, as OpenDAL's
//! behaviour tests do: a backend that stores arbitrary bytes must return them unchanged,
//! a text-only backend awkward text; a backend with version ids or stages must serve a
//! pinned version, one without must refuse it; a backend that reports a
//! [`Backend::revision`] must move it when its data changes; a backend with a remote
//! service must answer with a temporary error when that service cannot be reached.
//! Every case asserts something on every backend: where a capability is absent, the
//! case checks the refusal or the absence instead.

mod basics;
mod batches;
mod errors;
mod fixture;
mod support;
mod versions;

pub use basics::{
    binary_safe_value, found, key_found, key_missing, not_found, trailing_whitespace_kept,
    value_not_a_map,
};
pub use batches::{fetch_many_answers_every_entry_in_order, fetch_many_takes_more_than_max_batch};
pub use errors::{
    an_unreachable_service_is_unavailable_and_temporary,
    not_found_key_missing_and_invalid_config_are_permanent,
};
pub use fixture::{Fixture, RefusingAddress, Seed, Stages, Unreachable, Update};
use std::future::Future;
use std::pin::Pin;

pub use versions::{
    a_change_moves_a_reported_revision_and_none_stays_none,
    a_pinned_version_id_is_served_if_declared_else_refused,
    a_version_stage_is_served_if_declared_else_refused,
};

/// One conformance case: runs against a fixture and panics (an assertion) on failure.
pub type Case = for<'a> fn(&'a dyn Fixture) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Calls `$callback!($args... <every case name>)`: the one list of cases, from which
/// both [`CASES`] and [`conformance_suite!`](crate::conformance_suite) are made.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_conformance_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {$($args)* found, not_found, key_found,
            key_missing, value_not_a_map, binary_safe_value, trailing_whitespace_kept,
            fetch_many_answers_every_entry_in_order, fetch_many_takes_more_than_max_batch,
            a_change_moves_a_reported_revision_and_none_stays_none,
            a_pinned_version_id_is_served_if_declared_else_refused,
            a_version_stage_is_served_if_declared_else_refused,
            not_found_key_missing_and_invalid_config_are_permanent,
            an_unreachable_service_is_unavailable_and_temporary}
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_table {
    ($($case:ident),+) => {
        /// Every case with its name, for runners other than `cargo test` (such as
        /// `vaultbridge plugin check`).
        pub const CASES: &[(&str, Case)] = &[$((stringify!($case), {
            fn run(fixture: &dyn Fixture) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
                Box::pin($crate::conformance::$case(fixture))
            }
            run
        })),+];
    };
}

__with_conformance_cases!(__conformance_case_table!());

/// Generates one `#[tokio::test]` per conformance case in a `conformance` module.
/// `$fixture` is an expression evaluated afresh in every test. The calling crate needs
/// `tokio` (with `macros` and `rt`) as a dev-dependency.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr) => {
        $crate::conformance_suite!(conformance, $fixture);
    };
    ($module:ident, $fixture:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__with_conformance_cases!(conformance_suite!(@case $fixture;));
        }
    };
    (@case $fixture:expr; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::conformance::$case(&fixture).await;
            }
        )+
    };
}
