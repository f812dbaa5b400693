<?php
/**
 * WHMCS's ProviderInterface over Metrics. Loaded only where WHMCS's usage billing classes
 * exist (provisioner_MetricProvider), so the module loads on any PHP without them.
 */

namespace WHMCS\Module\Server\Provisioner;

use WHMCS\UsageBilling\Contracts\Metrics\MetricInterface;
use WHMCS\UsageBilling\Contracts\Metrics\ProviderInterface;
use WHMCS\UsageBilling\Metrics\Metric;
use WHMCS\UsageBilling\Metrics\Units\Accounts;
use WHMCS\UsageBilling\Metrics\Units\MegaBytes;
use WHMCS\UsageBilling\Metrics\Usage;

final class MetricsProvider implements ProviderInterface
{
    private array $params;

    public function __construct(array $params)
    {
        $this->params = $params;
    }

    /** Every metric, for any server (WHMCS also asks in a product's context). */
    public function metrics()
    {
        $metrics = [];
        foreach (Metrics::METRICS as $name => [$display, $kind, $single, $plural]) {
            $units = $kind === 'megabytes' ? new MegaBytes() : new Accounts($display, $single, $plural);
            $metrics[$name] = new Metric($name, $display, MetricInterface::TYPE_SNAPSHOT, $units);
        }
        return $metrics;
    }

    /** All usage of this server's services, keyed by tenant (the service's domain in WHMCS). */
    public function usage()
    {
        $connection = Connection::fromParams($this->params, new ModuleLog());
        $tenants = Metrics::tenants((int) ($this->params['serverid'] ?? 0));
        $usage = [];
        foreach (Metrics::usageByService($connection) as $serviceId => $item) {
            if (isset($tenants[$serviceId])) {
                $usage[$tenants[$serviceId]] = $this->wrap($item);
            }
        }
        return $usage;
    }

    /** The usage of one tenant (a service's domain on this server). */
    public function tenantUsage($tenant)
    {
        $connection = Connection::fromParams($this->params, new ModuleLog());
        $serviceId = array_search((string) $tenant, Metrics::tenants((int) ($this->params['serverid'] ?? 0)), true);
        if ($serviceId === false) {
            return $this->wrap([]);
        }
        $items = Metrics::usageByService($connection, (string) $serviceId);
        return $this->wrap($items[(string) $serviceId] ?? []);
    }

    private function wrap(array $item): array
    {
        $values = Metrics::values($item);
        $collected = Metrics::collectedAt($item);
        $out = [];
        foreach ($this->metrics() as $name => $metric) {
            if ($values[$name] !== null) {
                $metric = $metric->withUsage(new Usage($values[$name], $collected));
            }
            $out[$name] = $metric;
        }
        return $out;
    }
}
