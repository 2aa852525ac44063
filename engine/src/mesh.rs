//! Mesh features above the WireGuard sessions: [`channel`], ordered reliable message channels between
//! two nodes; [`discovery`], members learning each other over authenticated sessions, with the trust
//! rules of [`membership`] and the record format of [`wire`]; [`candidate`], the paths to a member
//! and the choice between them; [`relay`], frames carried through members for members; [`probe`], promotion of a relayed pair to a
//! direct path and fallback.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

/// Declares a drop reason enum (with `ALL` and `name`) and its counters (one `u64` per reason, with
/// `count`, `get`, `total`, `merge` and `iter`); channels and discovery both count their drops so.
macro_rules! drop_counters {
    (
        $(#[$reason_doc:meta])* enum $Reason:ident;
        $(#[$counters_doc:meta])* struct $Counters:ident;
        $( $(#[$doc:meta])* $name:ident ),* $(,)?
    ) => {
        $(#[$reason_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $Reason { $( $(#[$doc])* $name, )* }

        impl $Reason {
            /// Every reason, in counter order.
            pub const ALL: &'static [$Reason] = &[ $( $Reason::$name, )* ];

            /// The reason's name, for logs and JSON.
            pub fn name(self) -> &'static str {
                match self { $( $Reason::$name => stringify!($name), )* }
            }
        }

        $(#[$counters_doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $Counters([u64; $Reason::ALL.len()]);

        impl Default for $Counters {
            fn default() -> Self {
                $Counters([0; $Reason::ALL.len()])
            }
        }

        impl $Counters {
            /// Counts one drop.
            // Relay drops are counted by the runtime's data shards only.
            #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
            pub(crate) fn count(&mut self, reason: $Reason) {
                if let Some(c) = self.0.get_mut(reason as usize) {
                    *c += 1;
                }
            }

            /// Drops counted for `reason`.
            pub fn get(&self, reason: $Reason) -> u64 {
                self.0.get(reason as usize).copied().unwrap_or(0)
            }

            /// Every drop.
            pub fn total(&self) -> u64 {
                self.0.iter().sum()
            }

            /// Adds `other`'s counts to these.
            pub fn merge(&mut self, other: &$Counters) {
                for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
                    *mine += theirs;
                }
            }

            /// `(reason, count)` for every reason with a non-zero count.
            pub fn iter(&self) -> impl Iterator<Item = ($Reason, u64)> + '_ {
                $Reason::ALL
                    .iter()
                    .map(|r| (*r, self.get(*r)))
                    .filter(|(_, n)| *n > 0)
            }
        }
    };
}

pub mod bucket;
pub mod candidate;
pub mod channel;
pub mod discovery;
pub mod membership;
pub mod probe;
pub mod relay;
pub mod wire;
