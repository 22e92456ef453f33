//! Integration tests: the real app on port 0, real Redis, a fresh key prefix each.

mod auth;
mod cloudflare;
mod cluster;
mod consumers;
mod dialects;
mod errors;
mod groups;
mod helpers;
mod hostile;
mod leases;
mod lifecycle;
mod listeners;
mod messages;
mod model_based;
mod observability;
mod openapi;
mod operations;
mod queues;
mod security;
mod security_auth;
mod storage;
