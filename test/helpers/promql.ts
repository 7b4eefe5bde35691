// Parses PromQL with Prometheus' own grammar (lezer-promql) and reports what a static check needs: syntax
// errors, every selected series with its label matchers, and the function calls around them.
import { parser } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';

export interface Selector {
  /** Metric name, or undefined when selected by a {__name__=~"..."} matcher only. */
  name?: string;
  /** Regex of a __name__ matcher, when there is one. */
  nameRegex?: string;
  labels: string[];
  /** Innermost function whose argument this selector is (rate, histogram_quantile, ...), if any. */
  fn?: string;
}

export interface HistogramQuantileCall {
  /** Text of the second argument. */
  arg: string;
  /** Aggregation operator and grouping labels of that argument, when it is an aggregation. */
  aggregation?: { op: string; by: string[] };
}

export interface Analysis {
  errors: string[];
  selectors: Selector[];
  quantiles: HistogramQuantileCall[];
}

function unquote(s: string): string {
  return JSON.parse(s.startsWith("'") ? `"${s.slice(1, -1).replace(/"/g, '\\"')}"` : s) as string;
}

function children(n: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

export function analysePromQL(expr: string): Analysis {
  const tree = parser.parse(expr);
  const text = (n: SyntaxNode): string => expr.slice(n.from, n.to);
  const result: Analysis = { errors: [], selectors: [], quantiles: [] };

  const fnOf = (n: SyntaxNode): string | undefined => {
    for (let p = n.parent; p; p = p.parent) {
      if (p.name === 'FunctionCall') return text(p.getChild('FunctionIdentifier')!);
      if (p.name === 'AggregateExpr' || p.name === 'BinaryExpr') return undefined;
    }
    return undefined;
  };

  const visit = (n: SyntaxNode): void => {
    if (n.type.isError) result.errors.push(`syntax error at ${n.from}: ${JSON.stringify(expr.slice(Math.max(0, n.from - 20), n.to + 20))}`);
    if (n.name === 'VectorSelector') {
      const sel: Selector = { labels: [] };
      const id = n.getChild('Identifier');
      if (id) sel.name = text(id);
      const matchers = n.getChild('LabelMatchers');
      for (const m of matchers ? children(matchers) : []) {
        const label = m.getChild('LabelName');
        if (!label) continue;
        const lname = text(label);
        if (lname === '__name__') sel.nameRegex = unquote(text(m.getChild('StringLiteral')!));
        else sel.labels.push(lname);
      }
      const fn = fnOf(n);
      if (fn) sel.fn = fn;
      result.selectors.push(sel);
    }
    if (n.name === 'FunctionCall' && text(n.getChild('FunctionIdentifier')!) === 'histogram_quantile') {
      const body = n.getChild('FunctionCallBody')!;
      const args = children(body).filter((c) => c.name !== '(' && c.name !== ')' && c.name !== ',');
      const arg = args[1];
      if (arg) {
        const call: HistogramQuantileCall = { arg: text(arg) };
        if (arg.name === 'AggregateExpr') {
          const modifier = arg.getChild('AggregateModifier');
          const grouping = modifier?.getChild('GroupingLabels');
          call.aggregation = {
            op: text(arg.getChild('AggregateOp')!),
            by: modifier?.getChild('By') && grouping ? grouping.getChildren('LabelName').map(text) : [],
          };
        }
        result.quantiles.push(call);
      }
    }
    for (const c of children(n)) visit(c);
  };
  visit(tree.topNode);
  return result;
}
