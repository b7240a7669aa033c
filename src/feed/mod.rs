//! Feeds: one ordered stream of broadcast frames shared by several nodes.
//! `feed.redis` lives in [`redis`].

mod redis;

pub use redis::{FeedConfig, RedisFeed, TOPIC_FEED_TICK};
