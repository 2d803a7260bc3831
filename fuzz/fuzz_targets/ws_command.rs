//! Fuzzes the WebSocket command parser with arbitrary frames.
//!
//! Properties: parsing never panics; a failure always carries a message (and the `command_id`
//! when the input is JSON with one, so the client can match it); a parsed command serialises
//! back to JSON that parses to the same command (what we answer about is what was sent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_server::streaming::websocket::protocol::parse_command;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_command(text) {
        Ok(cmd) => {
            let again = serde_json::to_string(&cmd).expect("commands serialise");
            assert_eq!(parse_command(&again).ok(), Some(cmd));
        }
        Err((id, message)) => {
            assert!(!message.is_empty());
            if let Some(id) = id {
                let v: serde_json::Value = serde_json::from_str(text).expect("an id came from JSON");
                assert_eq!(v["command_id"].as_str(), Some(id.as_str()));
            }
        }
    }
});
