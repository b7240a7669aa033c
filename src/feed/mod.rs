//! Feeds: one ordered stream of broadcast frames shared by several nodes.
//! `feed.redis` is [`RedisFeed`].

mod redis;

pub use redis::{FeedConfig, RedisFeed, TOPIC_FEED_TICK};
