// Starts GraphiQL on this server's /graphql. A token goes in the Headers tab as
// {"Authorization": "Bearer ..."}; it is not persisted.
(function start() {
  const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
  const defaultQuery = [
    '# vaxvault GraphQL. Without a token you are the',
    '# public role (counts only). To act as another role,',
    '# put {"Authorization": "Bearer <token>"} in the',
    '# Headers tab below (vaxvault token --role admin).',
    '{',
    '  me { role }',
    '  districts { id name division }',
    '}',
    '',
  ].join('\n');
  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    shouldPersistHeaders: false,
    isHeadersEditorEnabled: true,
  }));
})();
