//! bff-contracts tests: the front ends' consumer pacts (standing in for the
//! app teams), and proofs that each contract check can fail.

mod checks;
mod pacts;
