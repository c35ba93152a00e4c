//! The dead-letter library against a real broker over TCP (the embedded one): a live tail
//! that finds what is there and follows what comes, and letters sent back and marked.

mod helpers;
mod replayer;
mod tail;
