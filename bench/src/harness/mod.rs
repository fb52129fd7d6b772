//! Load runs: a baseline and our stack, same process, interleaved rounds.
//!
//! A [`Side`] makes calls; [`compare`] runs the sides in interleaved rounds
//! into one [`Series`] each; the resulting [`Comparison`] prints them and
//! their ratios.

mod comparison;
mod interval;
mod rounds;
mod series;
mod side;

pub(crate) use comparison::Comparison;
pub(crate) use rounds::compare;
pub(crate) use series::Series;
pub(crate) use side::{Side, fresh, service_side};
