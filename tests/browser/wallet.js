// Test-only: an EIP-1193 provider (window.ethereum) backed by ethers' Wallet, injected into
// every page before the page's own scripts run (as a wallet extension does). The test puts
// `const WALLET = { key, mode }` before this file and ethers' UMD build before that.
// mode "sign": signs what personal_sign is asked; "reject": the user refuses (code 4001).
(() => {
  const wallet = new ethers.Wallet(WALLET.key);
  const log = [];
  const fail = (code, message) => Object.assign(new Error(message), { code });
  window.__walletLog = log;
  window.ethereum = {
    isDidmpcTestWallet: true,
    async request(args) {
      const method = args && args.method;
      const params = (args && args.params) || [];
      log.push({ method, params });
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [wallet.address];
        case "eth_chainId":
          return "0x1";
        case "personal_sign": {
          if (WALLET.mode === "reject") throw fail(4001, "User rejected the request.");
          const [data, address] = params;
          if (String(address).toLowerCase() !== wallet.address.toLowerCase()) throw fail(4100, "not this wallet's account");
          return wallet.signMessage(ethers.getBytes(data));
        }
        default:
          throw fail(4200, "unsupported method " + method);
      }
    },
    on() {},
    removeListener() {},
  };
  window.dispatchEvent(new Event("ethereum#initialized"));
})();
