// The pools view.
export async function render(main) {
  main.textContent = 'pools';
}
