import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// `npm run dev` proxies the API to a Gatehouse on :8080 (GATEHOUSE_URL to change it).
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false },
  server: {
    proxy: { '/api': process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:8080' },
    // The API client is shared with the CLI and lives in the repository's src/client/.
    fs: { allow: ['..'] },
  },
});
