// Volto's package.json, made a frontend to build: its devDependencies
// less the ones a build does not use (tests, linters, storybook, cypress),
// and ajv 8 at the top (ajv-keywords 5, which the build uses, needs it).
const fs = require('fs');

const file = process.argv[2];
const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
const drop = ['storybook', '@storybook', 'cypress', 'vitest', '@vitest', 'eslint',
  '@typescript-eslint', 'stylelint', 'release-it', '@testing-library', 'jsdom',
  '@vitejs', 'redux-mock-store', 'react-test-renderer', 'start-server-and-test',
  'wait-on', '@sinonjs', 'deep-freeze', 'axe-core', '@plone/volto-coresandbox',
  'webpack-bundle-analyzer', '@types', '@plone/types', 'use-trace-update',
  'jsonwebtoken', 'jiti', 'identity-obj-proxy', 'husky', 'jest', '@jest', 'babel-jest'];
const dropped = (name) => drop.some((d) => name === d || name.startsWith(`${d}/`) || name.startsWith(`${d}-`));
const dev = {};
for (const [name, version] of Object.entries(pkg.devDependencies || {})) {
  if (!dropped(name)) dev[name] = version;
}
dev.ajv = '^8.0.0';
pkg.devDependencies = dev;
delete pkg.scripts;
fs.writeFileSync(file, JSON.stringify(pkg, null, 2));
