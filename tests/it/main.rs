//! Integration tests: the real server on port 0, real HTTP clients, real ffmpeg/ffprobe as the
//! independent judge of what we serve. One test binary (link once).

mod adaptive;
mod analytics;
mod api;
mod broker;
mod fixtures;
mod helpers;
mod hls;
mod library;
mod lifecycle;
mod openapi;
mod safety;
mod social;
mod spec_examples;
mod stream;
mod websocket;
