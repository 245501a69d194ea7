// The cost view.
export async function render(main) {
  main.textContent = 'cost';
}
