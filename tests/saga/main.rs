//! End-to-end saga tests: the broker and every service run as separate processes; the tests
//! speak HTTP to order-api, read each service's own database, and read and write topics.

mod asyncapi;
mod backpressure;
mod bad_input;
mod bench;
mod callbacks;
mod chaos;
mod cli;
mod compose;
mod configuration;
mod contracts;
mod dashboard;
mod dead_letters;
mod deadline;
mod declined;
mod docs;
mod edges;
mod fuzz;
mod happy_path;
mod invariants;
mod openapi;
mod order_callbacks;
mod out_of_stock;
mod passed_over;
mod poison;
mod problem_answers;
mod provider;
mod readme;
mod redelivery;
mod replica_streams;
mod restart;
mod scale_out;
mod timeline;
mod tracing;
mod up;
mod webhook_secrets;
