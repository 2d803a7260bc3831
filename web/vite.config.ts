/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Where the dev server (and `vite preview`) forwards API, HLS and stream requests.
// Override with STREAM_SERVER_URL=http://127.0.0.1:PORT when the server runs elsewhere.
const target = process.env.STREAM_SERVER_URL ?? 'http://127.0.0.1:8082';

const proxy = {
  '/api/ws': { target, ws: true, changeOrigin: true },
  '/api': { target, changeOrigin: true },
  '/hls': { target, changeOrigin: true },
  '/stream': { target, changeOrigin: true },
  '/healthz': { target, changeOrigin: true },
};

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
  build: {
    outDir: 'dist',
    sourcemap: true,
    // React + hls.js (light build) come to ~600 kB minified, ~200 kB gzipped: expected for this app.
    chunkSizeWarningLimit: 800,
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.{ts,tsx}'],
    testTimeout: 20_000,
    hookTimeout: 90_000,
    // The server tests spawn a real stream-server; keep files sequential on a 2-core machine.
    fileParallelism: false,
  },
});
