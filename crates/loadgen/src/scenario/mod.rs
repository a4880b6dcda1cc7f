//! The seven scenarios; each validates its arguments, checks its target, runs, and returns a
//! [`Report`](crate::report::Report).

pub mod bare;
pub mod churn;
pub mod compare;
pub mod fanout;
pub mod idle;
pub mod queue;
pub mod soak;
pub mod storm;
