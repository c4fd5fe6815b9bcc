/**
 * Ferry's import rules, checked by dependency-cruiser: `npm run lint:deps` (part of `npm run test:here`).
 * docs/ARCHITECTURE.md, "Faces and the import rules", says why; test/import-rules.test.ts shows that they catch a deep
 * import and an import pointing up. Paths are relative to the directory depcruise runs in (the checkout's root).
 *
 * Tests obey the same rules as the code they test (they import other folders through index.ts, and the files of
 * their own folder freely), with one addition: tests and benchmarks may import the helpers of test/support/.
 */

/** The top-level folders. The first group of a `from` path is the importer's folder (`$1` in its `to`). */
const FOLDERS = '(api|cli|cloudsnap|node|kms|common|bench|test|infra)';

/** Every folder's public face. */
const FACE = `^${FOLDERS}/index\\.ts$`;

/**
 * Second faces: other files that other folders may import, each for a reason.
 * - common/native/index.ts: the compiled addon (build/Release/ferry_native.node) and the memory settings built on it.
 *   Loading it loads the binary, and fails when it was not built; apart from common/index.ts, which every folder
 *   imports, only the code that uses the addon takes that on.
 * - api/lambda.ts: the Lambda entry point, named by its path in infra/serverless/template.yaml
 *   (`Handler: dist/api/lambda.handler`), like cli/main.ts for the command; it keeps the one app a warm Lambda
 *   reuses, built from the environment on the first request. Its test loads it as Lambda does.
 * - cloudsnap/store/index.ts: the S3 and GCS clients and stores. Importing them loads the AWS SDK (about 10 MiB),
 *   which a node loads only on a credential's first use; cloudsnap/index.ts stays free of it (cloudsnap/face.test.ts).
 * - cloudsnap/testing.ts: the object-store conformance suite, which imports vitest (a dev dependency): for tests.
 */
const SECOND_FACES = [
  '^common/native/index\\.ts$',
  '^api/lambda\\.ts$',
  '^cloudsnap/store/index\\.ts$',
  '^cloudsnap/testing\\.ts$',
];

/**
 * For tests and benchmarks only: test/support/, the helpers that start real servers (Ceph RGW, Azurite, nodes) or
 * stand in for Vault and AWS KMS, one file each. Not one index.ts: every test would then load every helper, and
 * through them every product folder.
 */
const TEST_SUPPORT = '^test/support/[^/]+\\.ts$';

/** Test code: test/, bench/ and every *.test.ts. */
const TEST_CODE = ['\\.test\\.ts$', '^(test|bench)/'];

/** Test code, with its folder as the first group (a lookahead picks the files, then the group takes the folder). */
const TEST_CODE_FROM = `^(?=(?:test|bench)/|.*\\.test\\.ts$)${FOLDERS}/`;

module.exports = {
  forbidden: [
    {
      name: 'through-the-face',
      comment:
        "An import across top-level folders goes to the target folder's index.ts, never to a file behind it: " +
        'export what is needed from that index.ts and import it from there.',
      severity: 'error',
      from: { path: `^${FOLDERS}/`, pathNot: TEST_CODE },
      to: { path: `^${FOLDERS}/`, pathNot: ['^$1/', FACE, ...SECOND_FACES] },
    },
    {
      name: 'through-the-face-in-tests',
      comment:
        'A test or benchmark imports other folders through their index.ts too (or a helper of test/support/): ' +
        'export what is needed from that index.ts and import it from there.',
      severity: 'error',
      from: { path: TEST_CODE_FROM },
      to: { path: `^${FOLDERS}/`, pathNot: ['^$1/', FACE, ...SECOND_FACES, TEST_SUPPORT] },
    },
    {
      name: 'node-and-kms-only-on-common',
      comment:
        'node/ and kms/ are the bottom of the product: they depend on common/ only (their tests on test/support/ too).',
      severity: 'error',
      from: { path: '^(node|kms)/' },
      to: { path: `^${FOLDERS}/`, pathNot: ['^$1/', '^common/', TEST_SUPPORT] },
    },
    {
      name: 'common-on-nothing',
      comment: 'common/ is what every folder shares: it depends on no other folder.',
      severity: 'error',
      from: { path: '^common/' },
      to: { path: `^${FOLDERS}/`, pathNot: ['^common/', TEST_SUPPORT] },
    },
    {
      name: 'cloudsnap-not-on-api-or-cli',
      comment: 'cloudsnap/ is below the API and the command: it never imports them.',
      severity: 'error',
      from: { path: '^cloudsnap/' },
      to: { path: '^(api|cli)/' },
    },
    {
      name: 'api-not-on-cli',
      comment: 'The API is below the command: cli/ wires the API, never the reverse.',
      severity: 'error',
      from: { path: '^api/' },
      to: { path: '^cli/' },
    },
    {
      name: 'product-not-on-test-or-bench',
      comment: 'Nothing that ships imports tests or benchmarks.',
      severity: 'error',
      from: { path: '^(api|cli|cloudsnap|node|kms|common|infra)/', pathNot: TEST_CODE },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'tests-not-on-other-tests-or-bench',
      comment: "A product folder's tests use test/support/, not other tests or benchmarks.",
      severity: 'error',
      from: { path: '^(api|cli|cloudsnap|node|kms|common|infra)/.*\\.test\\.ts$' },
      to: { path: '^(test|bench)/', pathNot: TEST_SUPPORT },
    },
    {
      name: 'no-circular',
      comment:
        'No import cycles at run time: a cycle makes load order matter and hides which side owns what. A cycle ' +
        'that closes only through `import type` is erased by the compiler and allowed.',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    includeOnly: `^${FOLDERS}/`,
    doNotFollow: { path: 'node_modules' },
    // `import type` counts for the faces and the layers: a type is part of a folder's face like anything else.
    tsPreCompilationDeps: true,
  },
};
