/** Products: one per gateway, created with it. */
import { api, ok } from '../api.ts';
import { navigate } from '../router.ts';
import { Banner, Empty, Link, Spinner, useLoad } from '../ui.tsx';

export function ProductsPage() {
  const { data, error, loading } = useLoad(async () => {
    const [products, gateways] = await Promise.all([
      ok(api.GET('/api/v1/products')),
      ok(api.GET('/api/v1/gateways')),
    ]);
    return { products: products.items, gateways: new Map(gateways.items.map((g) => [g.id, g])) };
  });
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Products</h1>
          <p className="muted-text">Every gateway has its own product, named Gateway followed by the gateway's ID. Its devices live there.</p>
        </div>
      </div>
      {error && <Banner kind="error">{error.message}</Banner>}
      {loading && data === null ? <Spinner /> : data && data.products.length === 0 ? (
        <Empty title="No products yet" action={<button className="btn primary" onClick={() => navigate('/gateways/new')}>Add a gateway</button>}>
          A product is created with each gateway. Add a gateway first, then import its devices here.
        </Empty>
      ) : data && (
        <div className="table-wrap">
          <table className="table">
            <thead><tr><th>Product</th><th>Product key</th><th>Gateway</th><th>Devices</th><th className="actions">Actions</th></tr></thead>
            <tbody>
              {data.products.map((p) => (
                <tr key={p.productKey}>
                  <td data-label="Product"><Link to={`/products/${p.productKey}`}><strong>{p.name}</strong></Link></td>
                  <td data-label="Product key"><code>{p.productKey}</code></td>
                  <td data-label="Gateway">{data.gateways.get(p.gatewayId)?.name ?? p.gatewayId}</td>
                  <td data-label="Devices">{p.deviceCount.toLocaleString('en-US')} <span className="sub">({p.deviceCounts.online.toLocaleString('en-US')} online)</span></td>
                  <td data-label="Actions" className="actions"><button className="btn small" onClick={() => navigate(`/products/${p.productKey}`)}>View</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
