// The task view.
export async function render(main) {
  main.textContent = 'task';
}
