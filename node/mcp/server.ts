/**
 * `peakdb mcp`: a Model Context Protocol server over stdio (the official SDK), so that agents
 * can remember, recall, forget and consolidate memories, search a collection or the swarm, and
 * find, get and put documents. Each tool is a local API method: it runs in the daemon when one
 * owns the data dir, else on the data dir opened for that call, exactly as the CLI does. Tool
 * inputs are the methods' own schemas; a failure is a tool error naming its type.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { methodParams, type MethodName } from '../daemon/rpc.js'
import { invoke } from '../cli/target.js'

/** The tools: name, the local API method it runs, and what it is for. */
export const MCP_TOOLS: ReadonlyArray<{ readonly name: string, readonly method: MethodName, readonly title: string, readonly description: string, readonly readOnly: boolean }> = [
  { name: 'remember', method: 'memoryRemember', title: 'Remember', readOnly: false, description: 'Remember a text. kind "context" (default): short-term, scoped to agent and session, expiring (ttl ms), kept on this device. kind "knowledge": a long-term fact replicated to all the user\'s devices; give entities (what it is about) and attribute (which property it states, e.g. city) so that a newer fact replaces an older one. Remembering the same text again returns the same memory.' },
  { name: 'recall', method: 'memoryRecall', title: 'Recall', readOnly: false, description: 'The memories that best match a query, best first: current facts and live context (hybrid search). asOf (ISO 8601) gives the facts valid at that time. swarm: true also asks the user\'s other online devices for their context.' },
  { name: 'forget', method: 'memoryForget', title: 'Forget', readOnly: false, description: 'Forget a memory by id: removed from every device, with the content of its history.' },
  { name: 'consolidate', method: 'memoryConsolidate', title: 'Consolidate memory', readOnly: false, description: 'Promote context that was recalled or repeated to knowledge, merge duplicate facts (keeping all provenance) and retire facts a newer one contradicts (still found with asOf). dryRun: true only reports the plan.' },
  { name: 'memory_history', method: 'memoryHistory', title: 'Memory history', readOnly: true, description: 'Every version of a memory and why it changed (created, repeated, promoted, merged, invalidated, forgotten).' },
  { name: 'search', method: 'search', title: 'Search a collection', readOnly: true, description: 'Search a collection of documents by meaning and words (mode hybrid, vector or text), with an optional exact where filter.' },
  { name: 'swarm_search', method: 'swarmSearch', title: 'Search all devices', readOnly: true, description: 'Search a collection on every online device of the user\'s swarm and merge the results (needs a running daemon to reach other devices).' },
  { name: 'find', method: 'find', title: 'Find documents', readOnly: true, description: 'Documents of a collection matching query.where (e.g. {"status":"open","year":{"gte":2020}}), with query.orderBy, query.limit and query.offset.' },
  { name: 'get', method: 'get', title: 'Get a document', readOnly: true, description: 'One document of a collection by id.' },
  { name: 'put', method: 'put', title: 'Put documents', readOnly: false, description: 'Write a document (a JSON object, with _id to replace that document) or an array of them to a collection; replicated to the user\'s devices.' }
]

/** Options of {@link runMcpServer}. */
export interface McpServerOptions {
  readonly dir: string
  readonly passphraseFile?: string
  readonly version: string
}

/** Builds the server (tests and embedders may connect it to another transport). */
export function createMcpServer (options: McpServerOptions): McpServer {
  const server = new McpServer({ name: 'peakdb', version: options.version })
  const call = options.passphraseFile !== undefined ? { passphraseFile: options.passphraseFile } : {}
  for (const tool of MCP_TOOLS) {
    server.registerTool(tool.name, {
      title: tool.title,
      description: tool.description,
      inputSchema: methodParams[tool.method],
      annotations: { readOnlyHint: tool.readOnly, openWorldHint: false }
    }, async (args: unknown): Promise<CallToolResult> => {
      try {
        const result = await invoke(options.dir, tool.method, args, call)
        return { content: [{ type: 'text', text: JSON.stringify(result, null, 2) }] }
      } catch (err) {
        const e = err as Error
        return { isError: true, content: [{ type: 'text', text: `${e.name}: ${e.message}` }] }
      }
    })
  }
  return server
}

/** Serves MCP on stdin/stdout until the client closes stdin or the process is told to stop. */
export async function runMcpServer (options: McpServerOptions): Promise<void> {
  const server = createMcpServer(options)
  const transport = new StdioServerTransport()
  const closed = new Promise<void>(resolve => {
    transport.onclose = () => resolve()
    process.stdin.once('end', () => { void server.close().finally(resolve) })
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void server.close().finally(resolve) })
  })
  await server.connect(transport)
  await closed
}
