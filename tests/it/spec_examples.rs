//! The spec's Rust examples, unchanged apart from `use` lines (and `#[tokio::test]` wrappers).

use std::sync::Arc;
use std::time::Duration;

use stream_server::config::Config;
use stream_server::streaming::adaptive::{
    AdaptiveStreamingManager, ClientCapabilities, ConnectionType, DeviceType,
};

// "Streaming adaptatif complet", verbatim.
#[allow(unused_variables)]
async fn example_adaptive_streaming() -> Result<(), Box<dyn std::error::Error>> {
    let config = Arc::new(Config::from_env()?);
    let streaming_manager = AdaptiveStreamingManager::new(config);

    // Démarrer le monitoring de qualité
    streaming_manager.start_quality_monitor().await;

    // Simuler les capacités d'un client mobile
    let client_capabilities = ClientCapabilities {
        estimated_bandwidth_kbps: 150, // Connexion limitée
        buffer_duration_ms: 5000,      // Buffer de 5 secondes
        connection_type: ConnectionType::Cellular3G,
        device_type: DeviceType::Mobile,
        preferred_quality: None, // Laisser l'adaptation automatique
        adaptive_enabled: true,
    };

    // Créer une session de streaming
    let session_id = "session_mobile_001".to_string();
    let track_id = "epic_song_123".to_string();

    let initial_profile = streaming_manager
        .create_session(session_id.clone(), track_id.clone())
        .await;

    println!("Session créée: {}", session_id);
    println!(
        "Qualité initiale: {} ({}kbps)",
        initial_profile.quality_id, initial_profile.bitrate_kbps
    );

    // Générer le master playlist HLS
    let master_playlist = streaming_manager
        .generate_master_playlist(&track_id)
        .await?;
    println!("\nMaster Playlist HLS:");
    println!("{}", master_playlist);

    // Simuler une amélioration de la connexion
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Mettre à jour vers une meilleure qualité
    streaming_manager
        .update_session_quality(&session_id, "medium".to_string())
        .await;
    println!("\nQualité mise à jour vers: medium");

    // Afficher les statistiques
    let stats = streaming_manager.get_streaming_stats().await;
    println!("\nStatistiques de streaming:");
    println!("{}", serde_json::to_string_pretty(&stats)?);

    Ok(())
}

#[tokio::test(start_paused = true)]
async fn spec_adaptive_streaming_example_runs() {
    example_adaptive_streaming().await.unwrap();
}

#[tokio::test]
async fn the_example_session_ends_where_it_says() {
    let m = AdaptiveStreamingManager::new(Arc::new(Config::default()));
    let caps = ClientCapabilities {
        estimated_bandwidth_kbps: 150,
        buffer_duration_ms: 5000,
        connection_type: ConnectionType::Cellular3G,
        device_type: DeviceType::Mobile,
        preferred_quality: None,
        adaptive_enabled: true,
    };
    let p = m
        .create_session_with_capabilities("s".into(), "t".into(), "c".into(), caps)
        .await;
    assert_eq!(p.quality_id, "mobile");
    m.update_session_quality("s", "medium".into()).await;
    let stats = m.get_streaming_stats().await;
    assert_eq!(stats["sessions_by_quality"]["medium"], 1);
    assert_eq!(stats["quality_changes"], 1);
}

mod websocket_examples {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use stream_server::analytics::{AnalyticsEngine, Platform};
    use stream_server::config::Config;
    use stream_server::streaming::websocket::*;

    // "Gestion WebSocket avancée", verbatim.
    async fn example_websocket_management() -> Result<(), Box<dyn std::error::Error>> {
        let ws_manager = Arc::new(WebSocketManager::new());

        // Simuler une connexion WebSocket (normalement géré par axum)
        println!("Simulation d'une connexion WebSocket");

        // Créer des événements de test
        let events = vec![
            WebSocketEvent::PlaybackStarted {
                track_id: "song_001".to_string(),
                user_id: "user_123".to_string(),
                timestamp: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
            },
            WebSocketEvent::PlaybackProgress {
                track_id: "song_001".to_string(),
                user_id: "user_123".to_string(),
                position_ms: 45000, // 45 secondes
                buffer_percentage: 87.5,
            },
            WebSocketEvent::TrackLiked {
                track_id: "song_001".to_string(),
                user_id: "user_456".to_string(),
                total_likes: 127,
            },
            WebSocketEvent::ServerMessage {
                message: "Nouvelle fonctionnalité disponible!".to_string(),
                level: MessageLevel::Info,
            },
        ];

        // Diffuser les événements
        for event in events {
            ws_manager.broadcast_event(event).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        // Statistiques temps réel
        let live_stats = WebSocketEvent::LiveStats {
            concurrent_listeners: 1247,
            top_tracks: vec![
                LiveTrackStats {
                    track_id: "trending_001".to_string(),
                    title: "Summer Vibes".to_string(),
                    artist: "DJ Sunshine".to_string(),
                    current_listeners: 89,
                },
                LiveTrackStats {
                    track_id: "trending_002".to_string(),
                    title: "Night Drive".to_string(),
                    artist: "Neon Pulse".to_string(),
                    current_listeners: 67,
                },
            ],
            server_load: 0.32, // 32% de charge
        };

        ws_manager.broadcast_event(live_stats).await;

        // Afficher les statistiques WebSocket
        let stats = ws_manager.get_stats().await;
        println!("\nStatistiques WebSocket:");
        println!("{}", serde_json::to_string_pretty(&stats)?);

        Ok(())
    }

    #[tokio::test]
    async fn spec_websocket_management_example_runs() {
        example_websocket_management().await.unwrap();
    }

    // "Intégration avec analytics", verbatim (its relative database path is made inside a
    // temporary working directory).
    async fn example_streaming_with_analytics() -> Result<(), Box<dyn std::error::Error>> {
        let config = Arc::new(Config::from_env()?);
        let analytics =
            Arc::new(AnalyticsEngine::new("sqlite:analytics.db", config.clone()).await?);
        let ws_manager = Arc::new(WebSocketManager::new());

        // Commencer une session d'écoute
        let session_id = analytics
            .start_play_session(
                Some("user_123".to_string()),
                "epic_track_001".to_string(),
                "192.168.1.100".to_string(),
                Some("WebSocket Client/1.0".to_string()),
                180_000, // 3 minutes
                "high".to_string(),
                Platform::Web,
                Some("https://musicapp.com".to_string()),
            )
            .await;

        // Notifier via WebSocket
        let start_event = WebSocketEvent::PlaybackStarted {
            track_id: "epic_track_001".to_string(),
            user_id: "user_123".to_string(),
            timestamp: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
        };
        ws_manager.broadcast_event(start_event).await;

        // Simuler la progression avec analytics et WebSocket
        for position in (0..=180_000).step_by(15_000) {
            // Mettre à jour les analytics
            analytics
                .update_play_progress(
                    session_id,
                    position,
                    Some(90.0 + (position as f32 / 180_000.0) * 10.0), // Buffer 90-100%
                )
                .await;

            // Notifier la progression via WebSocket
            let progress_event = WebSocketEvent::PlaybackProgress {
                track_id: "epic_track_001".to_string(),
                user_id: "user_123".to_string(),
                position_ms: position,
                buffer_percentage: 90.0 + (position as f32 / 180_000.0) * 10.0,
            };
            ws_manager.broadcast_event(progress_event).await;

            println!(
                "Position: {}ms, Buffer: {:.1}%",
                position,
                90.0 + (position as f32 / 180_000.0) * 10.0
            );

            tokio::time::sleep(Duration::from_millis(200)).await; // Simulation
        }

        // Terminer la session
        analytics.end_play_session(session_id, None).await;

        let stop_event = WebSocketEvent::PlaybackStopped {
            track_id: "epic_track_001".to_string(),
            user_id: "user_123".to_string(),
            total_played_ms: 180_000,
        };
        ws_manager.broadcast_event(stop_event).await;

        println!("✅ Session terminée avec analytics et notifications WebSocket");

        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spec_analytics_integration_example_runs_and_writes_rows() {
        // The example opens `sqlite:analytics.db` relative to the working directory: run it in a
        // folder of its own that outlives the test (the working directory is process-wide).
        let dir =
            crate::helpers::workspace_tmp().join(format!("spec-analytics-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_current_dir(&dir).unwrap();
        example_streaming_with_analytics().await.unwrap();
        let a = AnalyticsEngine::new(
            &format!("sqlite:{}", dir.join("analytics.db").display()),
            Arc::new(Config::default()),
        )
        .await
        .unwrap();
        // The example does not wait for its writer: give the last batch a moment to commit.
        let mut completed = 0;
        for _ in 0..50 {
            completed = a.completion(0).await.unwrap().completed;
            if completed == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(completed, 1);
        let top = a.top_tracks(0, 5).await.unwrap();
        assert_eq!(top[0].track_id, "epic_track_001");
        assert_eq!(top[0].listening_ms, 180_000);
    }
}
