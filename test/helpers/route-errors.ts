/**
 * Which error codes each API route can answer, read off the source with the TypeScript
 * compiler. Every `route(router, method, path, handler)` in src/api/ is an operation of the
 * spec; from its handler the code it can run is followed through every function, method,
 * constructor and accessor of src/ it names (called or handed on as a value), and through an
 * interface's method to every class of src/ that implements the interface. Every
 * `CARPD_ERR_*` string met on the way is a code the route can answer. This over-approximates
 * (a code compared with, not thrown, counts too); it never misses a code that is written in
 * the code a handler reaches.
 *
 * What no handler holds, the app does for every route (src/api/app.ts): authentication,
 * body parsing, request validation and the error handler. globalCodes() derives those from
 * the operation as the spec declares it.
 */
import path from 'node:path';
import ts from 'typescript';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

export interface RouteErrors {
  method: string;
  path: string;
  /** Codes written in the code the handler reaches, each with one place that writes it. */
  codes: Map<ErrorCode, string>;
}

const SRC = path.resolve('src');
const CODE = /^CARPD_ERR_[A-Z_]+$/;

function program(): ts.Program {
  const configPath = path.resolve('tsconfig.json');
  const config = ts.readConfigFile(configPath, (f) => ts.sys.readFile(f));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, path.dirname(configPath));
  return ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
}

const inSrc = (sf: ts.SourceFile) => !sf.isDeclarationFile && sf.fileName.startsWith(SRC + path.sep) && !sf.fileName.includes(`${path.sep}generated${path.sep}`);

function where(node: ts.Node): string {
  const sf = node.getSourceFile();
  const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
  return `${path.relative(process.cwd(), sf.fileName)}:${line + 1}`;
}

/** Every operation's route with the codes its handler can reach. */
export function routeErrors(): RouteErrors[] {
  const prog = program();
  const checker = prog.getTypeChecker();
  const files = prog.getSourceFiles().filter(inSrc);

  // Classes by the interfaces they implement (directly, or through the class they extend).
  const implementers = new Map<ts.Symbol, ts.ClassLikeDeclaration[]>();
  for (const sf of files) {
    ts.forEachChild(sf, function visit(node) {
      if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) {
        for (const clause of node.heritageClauses ?? []) {
          for (const t of clause.types) {
            let sym = checker.getSymbolAtLocation(t.expression);
            if (sym && sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
            if (sym) implementers.set(sym, [...(implementers.get(sym) ?? []), node]);
          }
        }
      }
      ts.forEachChild(node, visit);
    });
  }
  const classesOf = (iface: ts.Symbol, seen = new Set<ts.Symbol>()): ts.ClassLikeDeclaration[] => {
    if (seen.has(iface)) return [];
    seen.add(iface);
    const direct = implementers.get(iface) ?? [];
    // A class that extends an implementing class implements it too.
    return direct.flatMap((c) => {
      const sym = c.name ? checker.getSymbolAtLocation(c.name) : undefined;
      return [c, ...(sym ? classesOf(sym, seen) : [])];
    });
  };

  /** The code a symbol stands for, when it is something that runs. */
  const bodiesOf = (sym: ts.Symbol): ts.Node[] => {
    if (sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
    const out: ts.Node[] = [];
    for (const d of sym.declarations ?? []) {
      if (!inSrc(d.getSourceFile())) continue;
      if (ts.isFunctionDeclaration(d) || ts.isMethodDeclaration(d) || ts.isGetAccessor(d) || ts.isSetAccessor(d) || ts.isConstructorDeclaration(d) || ts.isFunctionExpression(d) || ts.isArrowFunction(d)) {
        out.push(d);
      } else if ((ts.isVariableDeclaration(d) || ts.isPropertyDeclaration(d) || ts.isPropertyAssignment(d)) && d.initializer) {
        out.push(d.initializer);
      } else if (ts.isClassDeclaration(d)) {
        // `new X(...)`: its constructor and field initializers run.
        for (const m of d.members) if (ts.isConstructorDeclaration(m) || (ts.isPropertyDeclaration(m) && m.initializer)) out.push(m);
      } else if ((ts.isMethodSignature(d) || ts.isPropertySignature(d)) && ts.isInterfaceDeclaration(d.parent)) {
        const iface = checker.getSymbolAtLocation(d.parent.name);
        const name = d.name.getText();
        for (const c of iface ? classesOf(iface) : []) {
          for (const m of c.members) if (m.name && m.name.getText() === name) out.push(m);
        }
      }
    }
    return out;
  };

  const reach = (start: ts.Node): Map<ErrorCode, string> => {
    const codes = new Map<ErrorCode, string>();
    const seen = new Set<ts.Node>();
    const queue: ts.Node[] = [start];
    while (queue.length > 0) {
      const root = queue.pop()!;
      if (seen.has(root)) continue;
      seen.add(root);
      const visit = (node: ts.Node): void => {
        if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE.test(node.text)) {
          if (!(node.text in ERROR_CODES)) throw new Error(`${where(node)}: ${node.text} is not in the registry (src/errors.ts)`);
          if (!codes.has(node.text as ErrorCode)) codes.set(node.text as ErrorCode, where(node));
        } else if (ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) {
          const sym = checker.getSymbolAtLocation(node);
          if (sym) for (const b of bodiesOf(sym)) if (!seen.has(b)) queue.push(b);
        }
        ts.forEachChild(node, visit);
      };
      visit(root);
    }
    return codes;
  };

  const routes: RouteErrors[] = [];
  for (const sf of files.filter((f) => f.fileName.startsWith(path.join(SRC, 'api') + path.sep))) {
    ts.forEachChild(sf, function visit(node) {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'route' && node.arguments.length === 4) {
        const [, method, p, handler] = node.arguments;
        if (!ts.isStringLiteral(method) || !ts.isStringLiteral(p)) throw new Error(`${where(node)}: route() with a method or path that is not a literal`);
        routes.push({ method: method.text, path: p.text, codes: reach(handler) });
      }
      ts.forEachChild(node, visit);
    });
  }
  return routes;
}

type Json = Record<string, any>;

/**
 * The codes the app answers for an operation before or around its handler (src/api/app.ts):
 * the error handler's CARPD_ERR_INTERNAL everywhere; on every route behind authentication
 * (every operation with security) a missing or refused token, a source refused for too many
 * invalid tokens (src/api/auth-limit.ts), the read role on a change, a
 * body express.json cannot read (not JSON, too large, an unsupported charset or encoding:
 * parsed before the operation is known, so on any route), and the request validator's
 * refusals (an unknown query parameter is refused on every operation; a Content-Type the
 * operation does not take, where it takes a body).
 */
export function globalCodes(method: string, op: Json, spec: Json): ErrorCode[] {
  const codes: ErrorCode[] = ['CARPD_ERR_INTERNAL'];
  const security = (op.security ?? spec.security) as unknown[] | undefined;
  if (!security || security.length === 0 || security.every((s) => Object.keys(s as object).length === 0)) return codes;
  codes.push('CARPD_ERR_UNAUTHORIZED', 'CARPD_ERR_TOO_MANY_FAILURES', 'CARPD_ERR_MALFORMED_JSON', 'CARPD_ERR_BODY_TOO_LARGE', 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', 'CARPD_ERR_VALIDATION');
  if (method !== 'get' && method !== 'head') codes.push('CARPD_ERR_FORBIDDEN');
  return codes;
}
