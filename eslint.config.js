// ESLint for the whole repository: neostandard (the project's style: no semicolons, single
// quotes, a space before function parentheses) with its TypeScript rules, plus a few rules that
// guard the project's own conventions.

import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**', 'coverage/**'] }),
  {
    files: ['**/*.ts'],
    rules: {
      // Unused code is dead code; a leading underscore marks a parameter kept for its position.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    // The dashboard's browser modules (ui/, served as they are): the browser globals they use.
    files: ['ui/**/*.js'],
    languageOptions: {
      globals: { document: 'readonly', window: 'readonly', location: 'readonly', sessionStorage: 'readonly', getComputedStyle: 'readonly' },
    },
    rules: {
      // uPlot's constructor is named so by its author.
      'new-cap': ['error', { newIsCapExceptions: ['uPlot'] }],
    },
  },
  {
    rules: {
      // One error class (src/errors.ts): a thrown string loses the code and the stack.
      'no-throw-literal': 'error',
      // `void promise` marks a deliberate fire-and-forget (a shadow copy, a pool closing).
      'no-void': ['error', { allowAsStatement: true }],
      // weir's config syntax is `${NAME}` inside plain strings: messages and tests quote it.
      'no-template-curly-in-string': 'off',
      // Commented-out code and stray debugging do not land.
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
]
