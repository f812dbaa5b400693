{* provisioner: the module's part of an e-mail service's overview tab, shown below WHMCS's own
   product details (status, dates, Upgrade/Downgrade, Renew, Cancel, configurable options,
   custom fields, username, suspension reason stay as WHMCS shows them).
   Variables from provisioner_ClientArea: provisionerLang (the words, in the client's
   language), provisionerLimits (label, used, limit), provisionerQuota, provisionerStorage,
   provisionerStatus, provisionerNotice, provisionerCanManage, provisionerSsoLink. *}
<div class="provisioner-mailboxes">
    <h4>{$provisionerLang.provisioner_heading|escape}</h4>
    {if $provisionerNotice}
        <div class="alert alert-info">{$provisionerNotice|escape}</div>
    {/if}
    {if $provisionerLimits}
        <table class="table table-striped">
            <thead>
                <tr><th>&nbsp;</th><th class="text-right">{$provisionerLang.provisioner_in_use|escape}</th><th class="text-right">{$provisionerLang.provisioner_included|escape}</th></tr>
            </thead>
            <tbody>
                {foreach from=$provisionerLimits item=row}
                    <tr>
                        <td>{$row.label|escape}</td>
                        <td class="text-right">{$row.used|escape}</td>
                        <td class="text-right">{$row.limit|escape}</td>
                    </tr>
                {/foreach}
                {if $provisionerQuota}
                    <tr><td>{$provisionerLang.provisioner_space_per_mailbox|escape}</td><td class="text-right">&nbsp;</td><td class="text-right">{$provisionerQuota|escape}</td></tr>
                {/if}
                {if $provisionerStorage}
                    <tr><td>{$provisionerLang.provisioner_storage_used|escape}</td><td class="text-right">{$provisionerStorage|escape}</td><td class="text-right">&nbsp;</td></tr>
                {/if}
            </tbody>
        </table>
    {/if}
    {if $provisionerCanManage}
        <a href="{$provisionerSsoLink|escape}" class="btn btn-primary" target="_blank" rel="noopener">{$provisionerLang.provisioner_manage|escape}</a>
    {/if}
</div>
